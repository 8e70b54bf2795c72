"""The DARTS weight optimiser: PyTorch SGD with momentum, coupled weight decay, gradient
clipping, and the reference code's per-epoch cosine learning rate (Liu et al., ICLR 2019;
quark0/darts ``train_search.py`` / ``train.py``)."""
from __future__ import annotations

from typing import Callable

import optax


def make_cosine_schedule(lr, lr_min, epochs: int, steps_per_epoch: int = 1) -> Callable:
    """``schedule(step)``: cosine annealing from ``lr`` to ``lr_min`` over ``epochs``, the
    value held for each epoch of ``steps_per_epoch`` steps (PyTorch's
    ``CosineAnnealingLR`` stepped once per epoch). ``steps_per_epoch=1`` anneals per step.
    ``lr`` may be a traced scalar (a searched hyperparameter)."""
    alpha = lr_min / lr if lr_min else 0.0
    cosine = optax.cosine_decay_schedule(lr, decay_steps=max(epochs, 1), alpha=alpha)
    return lambda step: cosine(step // steps_per_epoch)


def make_sgd(schedule, *, momentum: float = 0.9, weight_decay: float = 3e-4,
             grad_clip: float = 5.0) -> optax.GradientTransformation:
    """PyTorch SGD as in DARTS: clip the gradient's global norm, add coupled L2
    (``weight_decay * w``), momentum, learning rate ``schedule`` (a callable or a float)."""
    return optax.chain(
        optax.clip_by_global_norm(grad_clip),
        optax.add_decayed_weights(weight_decay),
        optax.sgd(schedule, momentum=momentum),
    )
