"""Losses and metrics of a classifier's logits."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits, labels, label_smoothing: float = 0.0):
    """Mean softmax cross-entropy of ``logits`` against integer ``labels``, in float32.

    With ``label_smoothing`` ``s`` > 0 the targets are ``(1 - s) * one_hot + s / classes``
    (``optax.smooth_labels``, as the DARTS ImageNet protocol).
    """
    logits = logits.astype(jnp.float32)
    if not label_smoothing:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets).mean()


def accuracy(logits, labels):
    """Fraction of examples whose arg-max logit is the label."""
    return jnp.mean(jnp.argmax(logits, -1) == labels)


def masked_sums(logits, labels, mask) -> dict:
    """``{'loss': sum of cross-entropies, 'correct': number right}`` over the examples with
    ``mask`` 1 (a padded batch's real examples): the per-batch sums of a padded evaluation."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return {'loss': jnp.sum(losses * mask), 'correct': jnp.sum((jnp.argmax(logits, -1) == labels) * mask)}
