"""torchlean.runtime.data: datasets, seeded batch loaders, file loading, synthetic samples.

    ds = data.TensorDataset(x, y)                      # or data.load_csv("table.csv")
    loader = data.batch_loader(ds, batch_size=16, seed=0)
    for epoch in range(3):
        for xb, yb in loader:                          # epoch 0, then 1, then 2
            ...
    loader.epoch(7)                                    # any epoch's batches, explicitly

Files are untrusted input: `.npy` headers are parsed by our own parser (no pickle, no
eval), CSV cells must be numbers, text must be UTF-8; anything else is a
`DataFormatError` naming the file and the byte, line or column. Everything returned is a
spec `Tensor` (or a `TensorDataset` of two) in the field the caller asks for.
"""

from __future__ import annotations

from . import samples
from .csvfile import CsvTable, load_csv, load_csv_matrix, read_csv
from .dataset import TensorDataset
from .loader import BatchLoader, batch_loader, epoch_order
from .npy import load_npy, parse_npy, read_npy
from .text import CharVocab, char_sequences, load_text

__all__ = [
    "TensorDataset",
    "BatchLoader",
    "batch_loader",
    "epoch_order",
    "load_npy",
    "read_npy",
    "parse_npy",
    "load_csv",
    "load_csv_matrix",
    "read_csv",
    "CsvTable",
    "CharVocab",
    "load_text",
    "char_sequences",
    "samples",
]
