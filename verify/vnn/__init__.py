"""Verifying real models: VNN-COMP style properties over networks, with verdicts
(`holds`, `violated`, `unknown`, `timeout`) that are re-checked before they are reported.

Imports `torchlean.spec`, `torchlean.runtime` and the rest of `torchlean.verify`.
"""
