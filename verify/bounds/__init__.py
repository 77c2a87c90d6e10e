"""Output bounds over an input box: IBP and CROWN (sound in floating point), zonotopes,
robustness certificates with their exact checker, and model files.

    b = bounds.crown(net, net.params, lower, upper, C=margins)   # or bounds.ibp(...)

Imports `torchlean.spec` and `torchlean.runtime`.
"""

from .propagate import (
           COVERS,
           Bounds,
           alpha_crown,
           as_graph,
           crown,
           crown_with_layers,
           ibp,
           intersect,
           margin_matrix,
)

__all__ = ["Bounds", "ibp", "crown", "alpha_crown", "crown_with_layers", "intersect",
           "as_graph",
           "margin_matrix", "COVERS"]
