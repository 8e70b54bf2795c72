"""User-facing errors: one line, naming the problem and the fix."""


class JaxnasError(ValueError):
    """One-line user-facing error."""
