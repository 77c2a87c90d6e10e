"""torchlean.runtime.optim: functional optimizers with explicit state, schedules, clipping.

    opt = optim.adam(lr=optim.schedules.cosine(1e-3, total_steps=1000, warmup_steps=100))
    state = opt.init(params)
    params, state = opt.update(params, grads, state)

Every update follows PyTorch's equations (each constructor's docstring states them), is
pure (its inputs are left as they were), and is written with ops, so it runs on every
field and every kind of Value.
"""

from __future__ import annotations

from . import schedules
from .adagrad import Adagrad, adagrad
from .adam import Adam, AdamW, adam, adamw
from .base import LearningRate, Number, Optimizer, OptState, Schedule
from .clip import clip_by_global_norm
from .rmsprop import RMSprop, rmsprop
from .sgd import SGD, sgd

__all__ = [
    "Optimizer", "OptState", "LearningRate", "Number", "Schedule", "sgd", "adam", "adamw",
    "rmsprop", "adagrad", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "schedules",
    "clip_by_global_norm",
]
