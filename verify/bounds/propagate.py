"""IBP and CROWN output bounds over the graph IR, sound in binary64 arithmetic.

    b = bounds.crown(net, net.params, lower, upper, C=margins)   # or bounds.ibp(...)
    b.lower, b.upper                       # arrays (batch, spec rows)

`graph_or_model` is a traced `Graph` (one input, one output, batch first) or a built model
(`nn.Built`), which is traced in eval mode over the box's shape. Every bound is computed in
binary64 with outward rounding, so `[lower, upper]` contains the REAL-number value of the
graph (its literals and parameters read as the exact numbers they hold) at every point of
the box. How:

- every rounded elementwise result is moved one step outward with `np.nextafter` (a
  round-to-nearest result is within half a spacing of the exact one);
- a float64 dot product of length n is off by at most gamma_n * sum |a||b| with
  gamma_n = n u / (1 - n u), u = 2^-53 (Higham, "Accuracy and Stability of Numerical
  Algorithms", 2nd ed., eq. (3.5)); we bound sum |a||b| cheaply by ||a||_1 max|b| and add
  n * 2^-1021 to cover subnormal results (`verify/outward.py`);
- CROWN keeps the coefficient arrays as computed floats and charges each coefficient's
  rounding error E times the magnitude of the value it multiplies (known from IBP) to a
  running `slack`, subtracted from the bound at the end (`backward.py`);
- relaxation lines take a float slope and an intercept bounded with directed rounding
  from rigorous function enclosures, valid for that slope whatever its rounding
  (`relaxations.py`, `functions.py`, where the libm error budget is stated).

The modules: `problem` (the graph, box, spec and leaf values), `ibp` (the "ibp" rule
table), `relaxations` (the "relaxation" table), `backward` (the "crown" table and the
backward pass), `api` (the entry points). This module gathers the public names.
"""

from __future__ import annotations

from .api import alpha_crown, crown, crown_with_layers, ibp
from .ibp import ibp_nodes as _ibp_nodes
from .problem import COVERS, Bounds, as_graph, intersect, margin_matrix
from .problem import host as _host

__all__ = ["Bounds", "ibp", "crown", "alpha_crown", "crown_with_layers", "intersect", "as_graph",
           "margin_matrix", "COVERS", "_host", "_ibp_nodes"]
