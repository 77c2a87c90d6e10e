"""A tiny causal transformer learns to copy a token sequence.

    python examples/models/transformer_copy_task.py --steps 150

Each sequence is L = 3 random tokens (vocabulary of 4) followed by the same 3 tokens
again; at every position the model predicts the next token (teacher forcing). Positions
whose next token is a fresh random one have the target BLANK instead, so every target is
predictable: the L copy predictions need attention to the token L - 1 places back. The
input id of a token is `position * VOCAB + token` (one table embeds token and position).
Model: embedding -> causal transformer_encoder_block -> linear head. Trains on all
4^3 = 64 sequences and prints the loss before and after and the copy accuracy (the share
of the copied tokens predicted right), plus a few probes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

import torchlean as tl
from torchlean import nn

# 1. Constants
VOCAB, LENGTH = 4, 3
SEQ = 2 * LENGTH
BLANK = VOCAB  # the target where the next token is not determined by the past
D_MODEL, HEADS, FF = 16, 2, 32
STEPS, LEARNING_RATE = 150, 0.02
PROBES = [(0, 1, 2), (3, 3, 0), (2, 0, 1)]


# 2. Model builder
def make_model() -> nn.Sequential[nn.Scalar, nn.Vec[Any]]:
    """Joint token-and-position embedding, one causal post-norm block, a linear head."""
    # The embedding is typed per id (Scalar -> Vec), the block per sequence (Mat -> Mat):
    # ids of shape (batch, SEQ) do give (batch, SEQ, D_MODEL), which the shape types cannot
    # say, so the embedding is re-typed as a sequence layer here; likewise the head, which
    # acts on the last axis of (batch, SEQ, D_MODEL).
    embed = cast("nn.Layer[nn.Scalar, nn.Mat[Any, int]]", nn.embedding(SEQ * VOCAB, D_MODEL))
    block: nn.Layer[nn.Mat[Any, int], nn.Mat[Any, int]] = nn.transformer_encoder_block(
        D_MODEL, HEADS, FF, causal=True)
    head = cast("nn.Layer[nn.Mat[Any, int], nn.Vec[int]]", nn.linear(D_MODEL, VOCAB + 1))
    return embed >> block >> head


def sequences() -> np.ndarray[Any, Any]:
    """Every sequence x + x for x in {0..VOCAB-1}^LENGTH, shape (64, SEQ)."""
    xs = np.array(list(itertools.product(range(VOCAB), repeat=LENGTH)), dtype=np.int64)
    return np.concatenate([xs, xs], axis=1)


def inputs_and_targets(seqs: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any],
                                                             np.ndarray[Any, Any]]:
    """Input ids (token + position) and next-token targets (BLANK where unpredictable)."""
    ids = seqs + VOCAB * np.arange(SEQ)
    targets = np.full_like(seqs, BLANK)
    targets[:, LENGTH - 1:SEQ - 1] = seqs[:, LENGTH:]
    return ids, targets


def copy_accuracy(logits: np.ndarray[Any, Any], targets: np.ndarray[Any, Any]) -> float:
    """The share of the copied tokens (positions LENGTH-1 .. SEQ-2) predicted right."""
    guess = tl.train.to_floats(logits).argmax(-1)
    span = slice(LENGTH - 1, SEQ - 1)
    return float(np.mean(guess[:, span] == targets[:, span]))


# 3. Task
def task(seed: int) -> tl.train.Task:
    """Cross entropy of the next-token logits at every position."""
    return tl.train.classification(nn.build(make_model(), seed=seed))


def fit(runner: tl.train.Runner, cfg: tl.train.RunConfig, rest: list[str]) -> tl.train.FitReport:
    """Fit on all sequences, print the report, the copy accuracy and the probes."""
    ids, targets = inputs_and_targets(sequences())
    dataset = tl.data.TensorDataset(runner.as_input(ids), runner.as_input(targets))
    config = tl.train.steps(cfg.steps, tl.optim.adam(cfg.lr))
    report = tl.train.fit_dataset(runner.task, runner, config, dataset)
    runner.eval()
    accuracy = copy_accuracy(runner.predict(ids).numpy(), targets)
    report.metrics = {"loss": report.loss_after, "copy_accuracy": accuracy}
    print(report.summary())
    for probe in PROBES:
        pid, _ = inputs_and_targets(np.array([list(probe) * 2]))
        guess = tl.train.to_floats(runner.predict(pid)).argmax(-1)[0]
        copied = tuple(int(g) for g in guess[LENGTH - 1:SEQ - 1])
        print(f"probe {probe} -> copies {copied}")
    if cfg.log:
        report.write(cfg.log)
    return report


def main(argv: Sequence[str] | None = None) -> tl.train.FitReport:
    """Parse the common flags and run the fit."""
    flags = tl.train.Flags(steps=STEPS, lr=LEARNING_RATE, log=True)
    return tl.train.run(task, argv, fit, flags=flags, description=__doc__)


if __name__ == "__main__":
    main()
