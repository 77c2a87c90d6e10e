"""torchlean.runtime: array backends, eager tape, compiled graph, runner, optim, train, data.

Imports `torchlean.spec` only.
"""
