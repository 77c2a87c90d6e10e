"""torchlean.verify: gradient checks, rounding-error bounds, IBP/CROWN, certificates, strategies.

Imports `torchlean.spec` and `torchlean.runtime`.
"""
