"""`gradcheck` and `assert_gradients_match`: is the analytic gradient the derivative?

The analytic gradient (by default the eager tape's reverse mode, i.e. the op table's VJP
rules) is compared, direction by direction, with a reference computed without any VJP
rule. Methods:

- `exact`: reverse mode over `Fraction` against forward-mode dual numbers over
  `Fraction`. Zero tolerance: equality of rationals. Only for rational ops.
- `interval`: forward-mode dual numbers over intervals give an enclosure of the exact
  derivative of the real function at the (float64) point. Reverse mode evaluated over
  intervals must intersect it (a disjoint pair proves a wrong rule); the float64 tape
  gradient must lie within a rounding allowance of it, and the report gives a proven
  bound on that gradient's error.
- `mpmath`: central differences at `mp_prec` bits (default 200, about 60 digits) against
  reverse mode at the same precision and against the float64 gradient.
- `central`: central differences in binary64 with a step per entry and a derived
  tolerance (see `differences`).
- `fast`: `central` along a few random directions (v^T J u, as torch's fast_mode).
- `auto`: `exact` when every op is rational, else `interval`, else `mpmath`, else
  `central`; the standard basis up to `max_basis` entries, random directions beyond.

Any method can run along random directions (`directions=k`) instead of the basis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...runtime import autograd as ad
from ...spec.errors import FieldMismatchError, UnsupportedOperation
from ...spec.fields import Field, IntervalField, exact, float32, float64, interval
from ...spec.fields.native import NativeFloatField
from ...spec.tensor import Tensor
from ...spec.value import Value
from .adapters import Problem, as_problem
from .allowance import binary32_probe, gradient_allowance, rounding_depth, rounding_scale
from .compare import compare
from .differences import FLOAT64, Arithmetic, central_differences, mp_arithmetic
from .directions import Directions
from .forward import forward_derivatives
from .kinks import kink_distance
from .mpfloat import MPFloatField
from .report import Comparison, GradcheckReport, GradientMismatch
from .trees import Leaf, host_values, map_values, named_leaves, rebuild, to_field, tree_values

__all__ = ["gradcheck", "assert_gradients_match", "METHODS"]

METHODS = ("auto", "central", "fast", "mpmath", "exact", "interval")
FAST_DIRECTIONS = 3
AUTO_RANDOM_DIRECTIONS = 4

# The analytic gradient under test: None (the eager tape), a function called like
# `autograd.grad(f, argnums=tuple)` (returning one gradient tree per differentiated
# argument), or fixed values with the structure of the differentiated arguments.
Analytic = Callable[..., Any] | Any


class _GradientShapeError(Exception):
    """The analytic gradient does not have the structure of the inputs."""


@dataclass
class _Check:
    problem: Problem
    leaves: list[Leaf]
    directions: Directions
    analytic: Analytic
    mp_prec: int
    interval_prec: int
    block: int
    notes: list[str] = field(default_factory=list)
    _args: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    _depth: int | None = None
    _scale: float = 0.0

    # -- arguments in a field -----------------------------------------------------------
    def args_in(self, fld: Field) -> tuple[Any, ...]:
        key = id(fld)
        if key not in self._args:
            self._args[key] = tuple(
                map_values(lambda v: to_field(v, fld), a) for a in self.problem.args
            )
        return self._args[key]

    def leaf_values(self, args: Sequence[Any]) -> list[Value]:
        return [v for i in self.problem.argnums for v in tree_values(args[i])]

    def depth(self) -> int:
        """Rounding depth L of f, from a binary64 tape."""
        if self._depth is None:
            _, tape = ad.trace(self.problem.f, *self.args_in(float64))
            self._depth = rounding_depth(tape)
            self._scale = rounding_scale(tape)
        return self._depth

    def value_scale(self) -> float:
        """The largest intermediate magnitude of f at the point (binary64)."""
        self.depth()
        return self._scale

    # -- the analytic gradient --------------------------------------------------------
    @property
    def fixed_analytic(self) -> bool:
        return self.analytic is not None and not callable(self.analytic)

    def gradient(self, fld: Field) -> list[Tensor]:
        """The analytic gradient's leaves, in `fld`."""
        nums = self.problem.argnums
        if self.fixed_analytic:
            given: Any = self.analytic
            trees = given if len(nums) > 1 else (given,)
            raw = [v for t in trees for v in tree_values(t)]
            return self._checked([to_field(v, fld) for v in raw])
        args = self.args_in(fld)
        fn = self.analytic if self.analytic is not None else ad.grad(self.problem.f, argnums=nums)
        trees = fn(*args)
        if not isinstance(trees, tuple) or len(trees) != len(nums):
            raise _GradientShapeError(
                f"the analytic gradient must be a tuple of {len(nums)} gradient tree(s), "
                f"one per differentiated argument; got {type(trees).__name__}"
            )
        return self._checked([v for t in trees for v in tree_values(t)])

    def given_field(self) -> Field:
        """The field of fixed analytic values (their rounding decides their allowance)."""
        given: Any = self.analytic
        trees = given if len(self.problem.argnums) > 1 else (given,)
        first = next(v for t in trees for v in tree_values(t))
        return first.field

    def _checked(self, grads: list[Value]) -> list[Tensor]:
        if len(grads) != len(self.leaves):
            raise _GradientShapeError(
                f"the analytic gradient has {len(grads)} tensors, the inputs have "
                f"{len(self.leaves)} ({', '.join(leaf.name for leaf in self.leaves)})"
            )
        for leaf, g in zip(self.leaves, grads, strict=True):
            if tuple(g.shape) != leaf.shape:
                raise _GradientShapeError(
                    f"the gradient of {leaf.name!r} has shape {tuple(g.shape)}, but "
                    f"{leaf.name!r} has shape {leaf.shape}"
                )
        out = []
        for g in grads:
            if not isinstance(g, Tensor):
                raise _GradientShapeError(f"gradients must be concrete tensors, got {g!r}")
            out.append(g)
        return out

    def directional(self, fld: Field, grads: Sequence[Tensor]) -> np.ndarray[Any, Any]:
        """<g, u> for every direction u, evaluated in `fld`."""
        d = self.directions
        if d.random is None:
            flat = [host_values(g).reshape(-1) for g in grads]
            joined = np.concatenate(flat) if flat else np.empty(0)
            return joined if joined.dtype != object else np.asarray(joined, dtype=object)
        out = np.empty(d.count, dtype=object)
        for j, u in enumerate(d.random):
            total = fld.constant(0)
            for g, uj in zip(grads, u, strict=True):
                gu = fld.mul(g.data, to_field(Tensor(np.asarray(uj), float64), fld).data)
                axes = tuple(range(len(uj.shape)))
                total = fld.add(total, fld.sum(gu, axes, False))
            out[j] = fld.to_numpy(total).reshape(()).item()
        if all(isinstance(v, float) for v in out):
            return out.astype(np.float64)
        return out

    def allowance(
        self,
        fld: Field,
        grads: Sequence[Tensor],
        a: np.ndarray[Any, Any],
        reference: np.ndarray[Any, Any] | None = None,
    ) -> np.ndarray[Any, Any]:
        """Rounding allowance of an analytic gradient computed in `fld` (0 if exact).

        With `reference`, the same gradient formula evaluated at high precision (per
        direction), the binary32 probe is added (see `allowance.binary32_probe`)."""
        unit = _unit_roundoff(fld)
        if unit == 0.0:
            return np.zeros(self.directions.count)
        # The reverse pass works at the magnitudes of the forward values, not of the final
        # gradient: a VJP like softmax's (g - sum(g y)) cancels terms far larger than its
        # result, so the largest intermediate S enters the scale too.
        largest_grad = max((float(np.max(np.abs(_floats(g)))) for g in grads if g.size),
                           default=0.0)
        scale = max(largest_grad, self.value_scale())
        rho = gradient_allowance(
            _floats_of(a), scale, self.directions.l1_norms(), self.depth(), unit
        )
        if reference is None or fld is not float64 or self.fixed_analytic:
            return rho
        try:
            a32 = _floats_of(self.directional(float32, self.gradient(float32)))
        except (ArithmeticError, ValueError, TypeError, UnsupportedOperation,
                _GradientShapeError):
            return rho
        probe = binary32_probe(a32, _floats_of(reference))
        if probe is None:
            self.notes.append("the binary32 rounding probe overflowed; allowance is gamma only")
            return rho
        return rho + probe


def _floats(g: Tensor) -> np.ndarray[Any, Any]:
    host = host_values(g)
    return host.astype(np.float64) if host.dtype != object else _floats_of(host)


def _floats_of(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    flat = np.asarray(values, dtype=object).reshape(-1)

    def one(x: Any) -> float:
        mpi = getattr(x, "_mpi_", None)
        return float(x.mid) if mpi is not None else float(x)

    return np.array([one(x) for x in flat], dtype=np.float64).reshape(np.shape(values))


def _unit_roundoff(fld: Field) -> float:
    if isinstance(fld, NativeFloatField):
        return float(np.finfo(fld.np_dtype).eps) / 2
    if isinstance(fld, MPFloatField):
        return 2.0**-fld.prec
    if fld.name == "ieee32exec":
        return 2.0**-24
    return 0.0  # exact and interval values carry no rounding to allow for


# -- the methods -------------------------------------------------------------------------
def _shape_failure(label: str, err: _GradientShapeError) -> Comparison:
    return Comparison(label, False, 0, float("inf"), float("inf"), None, None, 0.0, 0.0, 0.0,
                      failures=1, problem=str(err))


def _evaluator(check: _Check, fld: Field) -> tuple[list[np.ndarray[Any, Any]], Callable[..., Any]]:
    """Writable copies of the differentiated leaves in `fld`, and f evaluated on them."""
    args = check.args_in(fld)
    point = [np.array(host_values(v), order="C", copy=True) for v in check.leaf_values(args)]

    def evaluate(arrays: Sequence[np.ndarray[Any, Any]]) -> Any:
        out = check.problem.f(*rebuild(args, check.problem.argnums,
                                       [Tensor(a, fld) for a in arrays]))
        if not isinstance(out, Tensor) or out.shape != ():
            raise TypeError(f"gradcheck: f must return a scalar tensor, got {out!r}")
        return fld.to_numpy(out.data).reshape(()).item() if fld is not float64 else float(out.data)

    return point, evaluate


def _differences_method(check: _Check, fld: Field, arith: Arithmetic) -> list[Comparison]:
    """Central differences in `fld`: against the gradient in `fld` (when that is not
    binary64) and against the binary64 gradient."""
    point, evaluate = _evaluator(check, fld)
    _note_nearby_kinks(check, arith)
    # (who, field the gradient is evaluated in, field whose rounding it carries)
    under_test: list[tuple[str, Field, Field]] = []
    if check.fixed_analytic:
        under_test.append(("the given gradient", fld, check.given_field()))
    else:
        if fld is not float64:
            under_test.append((f"reverse mode in {fld.name}", fld, fld))
        under_test.append(("float64 gradient", float64, float64))
    results: list[Comparison] = []
    diffs = None
    same_formula: np.ndarray[Any, Any] | None = None
    for who, gfield, afield in under_test:
        name = f"{who} vs central differences ({arith.name})"
        try:
            grads = check.gradient(gfield)
        except _GradientShapeError as e:
            results.append(_shape_failure(name, e))
            continue
        a = check.directional(gfield, grads)
        rho = check.allowance(afield, grads, a, same_formula)
        if gfield is not float64:
            same_formula = a  # the reverse-mode formula at high precision: the probe's base
        if diffs is None:
            diffs = central_differences(evaluate, point, check.directions, arith, check.depth(),
                                        a, rho, [np.abs(_floats(g)) for g in grads],
                                        value_scale=check.value_scale())
        results.append(compare(name, a, diffs.derivative, diffs.tolerance + rho,
                               check.directions.name_of))
    return results


def _note_nearby_kinks(check: _Check, arith: Arithmetic) -> None:
    """Say so when a kink lies within reach of the difference steps (they straddle it)."""
    try:
        gap = kink_distance(check.problem.f, *check.args_in(float64))
    except FieldMismatchError:
        return  # f captures binary64 constants, which the probe's field cannot mix with
    values = [host_values(v) for v in check.leaf_values(check.args_in(float64))]
    scale = max([1.0] + [float(np.max(np.abs(v))) for v in values if v.size])
    reach = 4 * float(arith.step) * scale  # the +-2h points, with a factor 2 to spare
    if gap < reach:
        check.notes.append(
            f"a kink lies {gap:.3g} from the point, within the difference steps' reach "
            f"({reach:.3g}): the differences straddle it, so a mismatch here may be the kink's"
        )


def _run_central(check: _Check) -> tuple[list[Comparison], Counter[str], str]:
    comps = _differences_method(check, float64, FLOAT64)
    tol = (f"2 (T + R + I) + rho per entry: T = |D(2h) - D(h)| / 3, R = gamma_L S / h "
           f"(S = {check.value_scale():.3g}, the largest intermediate), "
           f"I = input rounding, step h_i = 2^-18 max(1, |x_i|), L = {check.depth()} "
           "(see verify.differences); rho = gamma_2L (|g.u| + ||g||_inf ||u||_1)")
    return comps, Counter(), tol


def _run_mpmath(check: _Check) -> tuple[list[Comparison], Counter[str], str]:
    mp = MPFloatField(check.mp_prec)
    arith = mp_arithmetic(mp.ctx)
    comps = _differences_method(check, mp, arith)
    tol = (f"2 (T + R + I) + rho with u = 2^-{check.mp_prec}, step 2^-{round(check.mp_prec / 3)}"
           f" max(1, |x_i|), L = {check.depth()}; the float64 gradient adds rho = gamma_2L(2^-53)"
           " (|g.u| + ||g||_inf ||u||_1) + binary32 probe")
    return comps, Counter(), tol


def _forward_reference(check: _Check, base: Field) -> tuple[np.ndarray[Any, Any], Counter[str]]:
    args = check.args_in(base)
    return forward_derivatives(check.problem.f, args, check.problem.argnums,
                               check.leaf_values(args), base, check.directions, check.block)


def _run_exact(check: _Check) -> tuple[list[Comparison], Counter[str], str]:
    reference, kinks = _forward_reference(check, exact)
    label = ("the given gradient" if check.fixed_analytic else "reverse mode") + \
        " vs forward mode, exact rationals"
    try:
        grads = check.gradient(exact)
    except _GradientShapeError as e:
        return [_shape_failure(label, e)], kinks, "zero"
    a = check.directional(exact, grads)
    comp = compare(label, a, reference, np.zeros(check.directions.count),
                   check.directions.name_of, exact_error=True)
    return [comp], kinks, "zero: the two exact rational derivatives must be equal"


def _run_interval(check: _Check) -> tuple[list[Comparison], Counter[str], str]:
    iv = interval if check.interval_prec == interval.prec else IntervalField(check.interval_prec)
    reference, kinks = _forward_reference(check, iv)
    comps: list[Comparison] = []
    plans: list[tuple[str, Field, Field]] = []  # (label, gradient field, allowance field)
    if check.fixed_analytic:
        plans.append(("the given gradient vs forward-mode enclosure", iv, check.given_field()))
    else:
        plans.append((f"reverse mode in intervals ({iv.prec} bits) vs forward-mode enclosure",
                      iv, iv))
        plans.append(("float64 gradient vs forward-mode enclosure", float64, float64))
    same_formula: np.ndarray[Any, Any] | None = None
    for label, gfield, afield in plans:
        try:
            grads = check.gradient(gfield)
        except _GradientShapeError as e:
            comps.append(_shape_failure(label, e))
            continue
        a = check.directional(gfield, grads)
        rho = check.allowance(afield, grads, a, same_formula)
        if gfield is iv:
            same_formula = a  # the reverse-mode formula in intervals: the probe's base
        comps.append(compare(label, a, reference, rho, check.directions.name_of,
                             prove_bound=afield is not iv))
    tol = ("enclosures must intersect (rigorous, no tolerance); a float gradient may lie "
           "rho = gamma_2L(u) (|g.u| + ||g||_inf ||u||_1) + binary32 probe outside the "
           f"enclosure, L = {check.depth() if any(_unit_roundoff(p[2]) for p in plans) else 'n/a'}")
    return comps, kinks, tol


_RUNNERS: dict[str, Callable[[_Check], tuple[list[Comparison], Counter[str], str]]] = {
    "central": _run_central,
    "fast": _run_central,
    "mpmath": _run_mpmath,
    "exact": _run_exact,
    "interval": _run_interval,
}


def _choose_directions(
    method: str, directions: int | None, leaves: list[Leaf], seed: int, max_basis: int
) -> Directions:
    if directions is not None:
        return Directions.sample(leaves, directions, seed)
    if method == "fast":
        return Directions.sample(leaves, FAST_DIRECTIONS, seed)
    total = sum(leaf.size for leaf in leaves)
    if method == "auto" and total > max_basis:
        return Directions.sample(leaves, AUTO_RANDOM_DIRECTIONS, seed)
    return Directions.basis(leaves)


_CAPTURED = (
    "f uses a tensor that is not among its inputs (a captured constant), which stays in its "
    "own field; pass it as an input (excluded with argnums) so gradcheck can convert it"
)


def gradcheck(
    f_or_task: Any,
    inputs: Any,
    *,
    method: str = "auto",
    directions: int | None = None,
    argnums: int | Sequence[int] | None = None,
    target: Any = None,
    loss: Callable[[Value, Value], Value] | None = None,
    wrt: str | Sequence[str] | None = None,
    analytic: Analytic = None,
    seed: int = 0,
    mp_prec: int = 200,
    interval_prec: int = 113,
    max_basis: int = 256,
    block: int = 32,
) -> GradcheckReport:
    """Check the analytic gradient of `f_or_task` at `inputs`; return a GradcheckReport.

    `f_or_task`: a function f(*inputs) -> scalar Value, a model (`params` + `apply`) or a
    task (`model` + `loss`); see `verify.adapters`. `inputs`: a tensor or a mapping (one
    argument), or a tuple/list of arguments (tensors, pytrees of tensors, or anything f
    takes); `argnums` picks the differentiated ones (default: every tensor/pytree).
    `method`: one of METHODS (see the module docstring). `directions=k` checks k random
    directions instead of every entry. `analytic`: the gradient under test (default: the
    eager tape); a function called like `autograd.grad(f, argnums=tuple)` or fixed values.
    """
    if method not in METHODS:
        raise ValueError(f"gradcheck: unknown method {method!r}; expected one of {METHODS}")
    if directions is not None and (isinstance(directions, bool) or directions < 1):
        raise ValueError(f"gradcheck: directions must be a positive int, got {directions!r}")
    if block < 1:
        raise ValueError(f"gradcheck: block must be >= 1, got {block}")
    problem = as_problem(f_or_task, inputs, argnums=argnums, target=target, loss=loss, wrt=wrt,
                         seed=seed)
    leaves = [leaf for leaf, _ in named_leaves(problem.args, problem.argnums, problem.prefixes)]
    dirs = _choose_directions(method, directions, leaves, seed, max_basis)
    check = _Check(problem, leaves, dirs, analytic, mp_prec, interval_prec, block)
    notes = check.notes
    order = ("exact", "interval", "mpmath", "central") if method == "auto" else (method,)
    for i, name in enumerate(order):
        try:
            comps, kinks, tol = _RUNNERS[name](check)
        except UnsupportedOperation as e:
            if i + 1 == len(order):
                raise
            notes.append(f"{name} method not applicable: {e}")
            continue
        except FieldMismatchError as e:
            if i + 1 == len(order):
                raise FieldMismatchError(f"gradcheck: {e}. {_CAPTURED}") from None
            notes.append(f"{name} method not applicable: {e} ({_CAPTURED})")
            continue
        label = f"auto -> {name}" if method == "auto" else name
        return GradcheckReport(label, dirs.describe(), tuple(comps), tol, dict(kinks), tuple(notes))
    raise AssertionError("unreachable")  # pragma: no cover


def assert_gradients_match(f_or_task: Any, inputs: Any, **options: Any) -> GradcheckReport:
    """`gradcheck` that raises GradientMismatch (an AssertionError carrying the report)
    when the check fails; returns the report when it passes."""
    report = gradcheck(f_or_task, inputs, **options)
    if not report.passed:
        raise GradientMismatch(report)
    return report
