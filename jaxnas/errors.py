"""User-facing errors: one line, naming the problem and the fix."""


class JaxnasError(ValueError):
    """One-line user-facing error."""


def one_line(message) -> str:
    """``message`` (an exception or text) on one line: its lines joined with ' / '."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    return ' / '.join(lines) or '(no message)'
