"""Functional autograd over the eager tape: grad, value_and_grad, vjp, jvp, hvp, trace.

Functions are differentiated with respect to arguments that are Values or pytrees of
them (mappings, tuples and lists), and gradients come back as explicit values of the
same structure; tensors carry no `.grad` and no hidden state. Forward mode (`jvp`) is
the transpose of reverse mode: the VJP of the (linear) pullback, so it needs no rules
beyond the op table's VJPs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..spec import functional as F
from ..spec.errors import ShapeError
from ..spec.value import Value
from .tape import NanPolicy, Tape, Traced

__all__ = [
    "grad",
    "value_and_grad",
    "vjp",
    "jvp",
    "hessian_vector_product",
    "trace",
    "tree_leaves",
    "tree_map",
]

Tree = Any  # a Value, or a Mapping / tuple / list of trees


def tree_leaves(tree: Tree) -> list[Value]:
    """The Values of a pytree in a fixed order (mappings in their own key order)."""
    if isinstance(tree, Value):
        return [tree]
    if isinstance(tree, Mapping):
        return [leaf for v in tree.values() for leaf in tree_leaves(v)]
    if isinstance(tree, (tuple, list)):
        return [leaf for v in tree for leaf in tree_leaves(v)]
    raise TypeError(f"cannot differentiate with respect to {type(tree).__name__}: {tree!r}")


def tree_map(fn: Callable[[Value], Value], tree: Tree) -> Tree:
    """Apply `fn` to every Value of a pytree, keeping its structure."""
    if isinstance(tree, Value):
        return fn(tree)
    if isinstance(tree, Mapping):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(fn, v) for v in tree)
    raise TypeError(f"cannot differentiate with respect to {type(tree).__name__}: {tree!r}")


def _tree_names(tree: Tree, prefix: str = "") -> list[str]:
    if isinstance(tree, Value):
        return [prefix or "x"]
    if isinstance(tree, Mapping):
        named = ((f"{prefix}.{k}" if prefix else str(k), v) for k, v in tree.items())
        return [n for name, v in named for n in _tree_names(v, name)]
    return [n for i, v in enumerate(tree) for n in _tree_names(v, f"{prefix}[{i}]")]


def _new_tape(trees: tuple[Tree, ...]) -> Tape:
    if len(trees) == 1 and type(trees[0]) is dict:  # parameters by name (every step)
        values = trees[0].values()
        if all(isinstance(v, Value) for v in values):
            return Tape(max((v._level for v in values), default=0) + 1)
    level = max((leaf._level for t in trees for leaf in tree_leaves(t)), default=0)
    return Tape(level + 1)


def _trace_args(tape: Tape, args: tuple[Tree, ...], argnums: tuple[int, ...]) -> tuple[Tree, ...]:
    traced = list(args)
    for i in argnums:
        tree, prefix = args[i], (f"arg{i}" if len(args) > 1 else "")
        if type(tree) is dict and all(isinstance(v, Value) for v in tree.values()):
            # Parameters by name, every step: the general path's result, built directly.
            traced[i] = {
                k: tape.leaf(v, (f"{prefix}.{k}" if prefix else str(k)) or "x")
                for k, v in tree.items()
            }
            continue
        names = iter(_tree_names(tree, prefix))
        traced[i] = tree_map(_leaf_maker(tape, names), tree)
    return tuple(traced)


def _leaf_maker(tape: Tape, names: Iterator[str]) -> Callable[[Value], Value]:
    def leaf(v: Value) -> Value:
        return tape.leaf(v, next(names))

    return leaf


def _cotangents(tape: Tape, traced: Tree, leaves: dict[int, Value]) -> Tree:
    if type(traced) is dict and all(type(t) is Traced for t in traced.values()):
        # Parameters by name (every step): what the general path below gives, directly.
        return {k: _leaf_cotangent(t, leaves) for k, t in traced.items()}

    def pick(t: Value) -> Value:
        assert isinstance(t, Traced) and t.index is not None
        return _leaf_cotangent(t, leaves)

    return tree_map(pick, traced)


def _leaf_cotangent(t: Traced, leaves: dict[int, Value]) -> Value:
    """The cotangent found for leaf `t`, or zeros where nothing reached it."""
    found = leaves.get(t.index) if t.index is not None else None
    return found if found is not None else F.zeros_like(t.primal)


def _as_argnums(argnums: int | tuple[int, ...], nargs: int) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not 0 <= n < nargs:
            raise ValueError(f"argnums {argnums!r} out of range for {nargs} arguments")
    return nums


def value_and_grad(
    f: Callable[..., Any],
    argnums: int | tuple[int, ...] = 0,
    *,
    has_aux: bool = False,
    nan: NanPolicy = "ignore",
) -> Callable[..., tuple[Any, Any]]:
    """A function returning (f(*args), gradient of f w.r.t. args[argnums]).

    f must return a scalar Value (or `(scalar, aux)` with has_aux). The gradient has the
    structure of the differentiated argument(s) (a tuple of them when argnums is a tuple).
    `nan` says what a NaN in a gradient does: ignore, warn, or raise GradientNaNError
    naming the tape node that produced it.
    """

    def run(*args: Tree) -> tuple[Any, Any]:
        nums = _as_argnums(argnums, len(args))
        tape = _new_tape(tuple(args[i] for i in nums))
        traced = _trace_args(tape, args, nums)
        result = f(*traced)
        out, aux = result if has_aux else (result, None)
        if not isinstance(out, Value):
            raise TypeError(f"grad: f must return a tensor, got {type(out).__name__}")
        if out.shape != ():
            raise ShapeError(
                f"grad: f must return a scalar (shape ()), got shape {out.shape}; "
                "use vjp for non-scalar outputs"
            )
        value = out.primal if isinstance(out, Traced) and out.tape is tape else out
        leaves: dict[int, Value] = {}
        if isinstance(out, Traced) and out.tape is tape:
            leaves = tape.backward(out, value._lift(1), nan=nan)
        grads = tuple(_cotangents(tape, traced[i], leaves) for i in nums)
        g = grads[0] if isinstance(argnums, int) else grads
        return ((value, aux), g) if has_aux else (value, g)

    return run


def grad(
    f: Callable[..., Any],
    argnums: int | tuple[int, ...] = 0,
    *,
    has_aux: bool = False,
    nan: NanPolicy = "ignore",
) -> Callable[..., Any]:
    """The gradient of scalar-valued f with respect to args[argnums] (see value_and_grad)."""
    vg = value_and_grad(f, argnums, has_aux=has_aux, nan=nan)

    def run(*args: Tree) -> Any:
        (value_aux, g) = vg(*args)
        return (g, value_aux[1]) if has_aux else g

    return run


def vjp(f: Callable[..., Tree], *primals: Tree) -> tuple[Tree, Callable[[Tree], tuple[Tree, ...]]]:
    """(f(*primals), pullback): pullback(ct) is the tuple of cotangents for each primal."""
    tape = _new_tape(primals)
    traced = _trace_args(tape, primals, tuple(range(len(primals))))
    out = f(*traced)
    outs = tree_leaves(out)

    def unwrap(v: Value) -> Value:
        return v.primal if isinstance(v, Traced) and v.tape is tape else v

    def pullback(ct: Tree) -> tuple[Tree, ...]:
        cts = tree_leaves(ct)
        if len(cts) != len(outs):
            raise ValueError(f"vjp: cotangent has {len(cts)} leaves, output has {len(outs)}")
        leaves: dict[int, Value] = {}
        for o, c in zip(outs, cts, strict=True):
            if c.shape != o.shape:
                raise ShapeError(f"vjp: cotangent shape {c.shape} != output shape {o.shape}")
            if isinstance(o, Traced) and o.tape is tape:
                for k, v in tape.backward(o, c).items():
                    leaves[k] = v if k not in leaves else leaves[k] + v
        return tuple(_cotangents(tape, t, leaves) for t in traced)

    return tree_map(unwrap, out), pullback


def jvp(
    f: Callable[..., Tree], primals: tuple[Tree, ...], tangents: tuple[Tree, ...]
) -> tuple[Tree, Tree]:
    """(f(*primals), J·tangents): forward-mode derivative, as the VJP of the pullback."""
    out, pullback = vjp(f, *primals)
    # pullback(u) = Jᵀu is linear in u, so its own VJP applied to the tangents is J·t.
    u0 = tree_map(F.zeros_like, out)
    _, pullback_t = vjp(lambda u: pullback(u), u0)
    (jt,) = pullback_t(tuple(tangents))
    return out, jt


def hessian_vector_product(f: Callable[[Tree], Value], x: Tree, v: Tree) -> Tree:
    """H·v for scalar f at x (reverse-over-reverse)."""

    def directional(y: Tree) -> Value:
        g = grad(f)(y)
        terms = [F.sum(a * b) for a, b in zip(tree_leaves(g), tree_leaves(v), strict=True)]
        total = terms[0]
        for t in terms[1:]:
            total = total + t
        return total

    return grad(directional)(x)


def trace(f: Callable[..., Tree], *args: Tree) -> tuple[Tree, Tape]:
    """Run f with every argument on a fresh tape; return (output, tape) for inspection."""
    tape = _new_tape(args)
    traced = _trace_args(tape, args, tuple(range(len(args))))
    out = f(*traced)
    return tree_map(lambda v: v.primal if isinstance(v, Traced) else v, out), tape
