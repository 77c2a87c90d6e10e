"""A tiny character language model: embedding -> GRU -> linear head on UTF-8 text.

    python examples/models/char_lm.py --steps 300

The built-in corpus (a few short repeated lines, with a non-ASCII character so the UTF-8
path is exercised) is written to a temporary file and read back with `tl.data.load_text`;
`tl.data.char_sequences` cuts it into windows of SEQ characters whose targets are the next
character at every position. The model predicts each next character with cross entropy.
Prints the loss before and after, the share of next characters predicted right, then a
greedy sample continuing a prompt (each step
appends the most likely next character given the last SEQ characters).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

import torchlean as tl
from torchlean import nn

# 1. Constants
CORPUS = (
    "the cat sat on the mat.\n"
    "the dog sat on the log.\n"
    "a café by the sea.\n"
) * 4
VOCAB = len(set(CORPUS))  # load_text's vocabulary: the distinct characters
SEQ, STRIDE = 12, 3
EMBED, HIDDEN = 12, 32
STEPS, LEARNING_RATE = 300, 0.03
BATCH_SIZE = 128  # more than the corpus's windows: by default each step sees them all
PROMPT, SAMPLE_LENGTH = "the d", 40


# 2. Model builder
def make_model() -> nn.Sequential[nn.Scalar, nn.Vec[Any]]:
    """Character embedding, a GRU over the window, a linear read-out per position."""
    # ids (batch, SEQ) give (batch, SEQ, EMBED), which the per-id type of the embedding
    # cannot say: it is re-typed as a sequence layer; likewise the head, which acts on the
    # last axis of (batch, SEQ, HIDDEN).
    embed = cast("nn.Layer[nn.Scalar, nn.Mat[Any, int]]", nn.embedding(VOCAB, EMBED))
    rnn: nn.Layer[nn.Mat[Any, int], nn.Mat[Any, int]] = nn.gru(EMBED, HIDDEN)
    head = cast("nn.Layer[nn.Mat[Any, int], nn.Vec[int]]", nn.linear(HIDDEN, VOCAB))
    return embed >> rnn >> head


def load_corpus() -> tuple[tl.data.CharVocab, list[int]]:
    """The corpus's vocabulary and ids, through a UTF-8 file as a user's text would come."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        path.write_text(CORPUS, encoding="utf-8")
        return tl.data.load_text(path)


def greedy_sample(runner: tl.train.Runner, vocab: tl.data.CharVocab, prompt: str,
                  length: int) -> str:
    """`prompt` continued by `length` characters, each the argmax given the last SEQ."""
    ids = vocab.encode(prompt)
    for _ in range(length):
        window = np.array([ids[-SEQ:]], dtype=np.int64)
        logits = tl.train.to_floats(runner.predict(window))
        ids.append(int(logits[0, -1].argmax()))
    return vocab.decode(ids)


# 3. Task
def task(seed: int) -> tl.train.Task:
    """Cross entropy of the next-character logits at every position."""
    return tl.train.classification(nn.build(make_model(), seed=seed))


def fit(runner: tl.train.Runner, cfg: tl.train.RunConfig, rest: list[str]) -> tl.train.FitReport:
    """Fit on the corpus windows, print the report and a greedy sample."""
    vocab, ids = load_corpus()
    dataset = tl.data.char_sequences(ids, SEQ, stride=STRIDE, dtype=runner.field)
    config = tl.train.steps(cfg.steps, tl.optim.adam(cfg.lr), batch_size=cfg.batch_size)
    report = tl.train.fit_dataset(runner.task, runner, config, dataset)
    runner.eval()
    inputs, targets = dataset.batch(range(len(dataset)))
    guess = tl.train.to_floats(runner.predict(inputs)).argmax(-1)
    accuracy = float(np.mean(guess == tl.train.to_floats(targets)))
    report.metrics = {"loss": report.loss_after, "char_accuracy": accuracy}
    print(report.summary())
    sample = greedy_sample(runner, vocab, PROMPT, SAMPLE_LENGTH)
    print("sample:", repr(sample))
    if cfg.log:
        report.write(cfg.log)
    return report


def main(argv: Sequence[str] | None = None) -> tl.train.FitReport:
    """Parse the common flags and run the fit."""
    flags = tl.train.Flags(steps=STEPS, lr=LEARNING_RATE, batch_size=BATCH_SIZE, log=True)
    return tl.train.run(task, argv, fit, flags=flags, description=__doc__)


if __name__ == "__main__":
    main()
