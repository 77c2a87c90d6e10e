"""VNN-LIB properties: a strict reader that parses (never evaluates) into exact cases.

    prop = read_vnnlib("prop_1.vnnlib", num_inputs=5, num_outputs=5)
    for case in prop.cases:
        case.box.lower, case.box.upper      # exact Fractions, one per X_i
        case.unsafe                         # OR of ANDs of LinearConstraint over Y

A VNN-LIB file (the SMT-LIB subset VNN-COMP uses) declares the inputs `X_0 .. X_{n-1}` and
the outputs `Y_0 .. Y_{m-1}` of a network (each `Real`, indexed row-major over the flattened
tensors) and asserts constraints on them. The asserts describe the COUNTEREXAMPLE region: the
property is violated exactly when some input satisfying them is mapped to outputs satisfying
them. The reader accepts the commands `declare-const` and `assert`; in formulas `and`, `or`,
`not` and the comparisons `<=`, `>=`, `<`, `>` (chains like `(<= a b c)` included) over linear
terms built with `+`, `-` (unary or n-ary), `*` (at most one non-constant factor) and `/` by a
non-zero constant; numerals are integers, decimals, scientific notation and negative literals
(`-0.5`, or `(- 0.5)`), all kept as exact Fractions; `;` starts a comment.

The whole file (the AND of its asserts) is brought to the cases it denotes: each case is an
input box, a closed box with one lower and one upper bound per input, and the unsafe output
region as a disjunction of conjunctions of `c . Y <= d`. Cases with the same box are merged.

Strict comparisons. `<` and `>` are kept as flags: bounding reads every constraint
non-strictly (the closure of the unsafe region; proving the closure empty proves the region
empty, so a `holds` stays sound), and a counterexample is checked against the strict reading
(`Property.is_counterexample`), so a `violated` is never reported for a point that only the
closure contains. `not` is normalised exactly (De Morgan; `not (a <= b)` is `a > b`).

Everything that is not this is a `DataFormatError` naming the file, line and column:
unbalanced parentheses, unknown commands or functions, undeclared or re-declared variables,
non-linear terms, constraints mixing X and Y, input constraints other than bounds on one X_i,
inputs left unbounded or with an empty range in some case, outputs the model lacks, and files
larger than `max_bytes` (checked before reading). The reader works command by command on a
line-by-line token stream with an explicit stack; terms nest at most `MAX_DEPTH` deep.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO, TypeAlias

from ...spec.errors import DataFormatError
from ...spec.file_limits import check_file_size

__all__ = [
    "LinearConstraint",
    "InputBox",
    "Case",
    "Property",
    "read_vnnlib",
    "parse_vnnlib",
    "format_vnnlib",
    "exact_decimal",
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_TERMS",
]

MAX_BYTES = 256 * 2**20
MAX_DEPTH = 200  # far below Python's recursion limit; VNN-COMP files nest 4 deep
MAX_TERMS = 100_000  # disjuncts after bringing a formula to disjunctive normal form
_MAX_EXPONENT = 1000  # |e| in 1.5e-7: keeps a numeral's Fraction small
_MAX_DIGITS = 1000

_TOKEN = re.compile(r"[()]|;[^\n]*|[^\s();]+")  # what it skips is whitespace
_NUMERAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?\Z")
_NUMERAL_DOT = re.compile(r"(-?)()\.([0-9]+)(?:[eE]([+-]?[0-9]+))?\Z")
_VARIABLE = re.compile(r"([XY])_(0|[1-9][0-9]{0,8})\Z")


# -- results ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LinearConstraint:
    """`sum_j coefficients[j] * Y_j <= bound` over the outputs (`<` when `strict`)."""

    coefficients: tuple[Fraction, ...]
    bound: Fraction
    strict: bool = False

    def holds_at(self, y: Sequence[Fraction]) -> bool:
        """Whether the exact outputs `y` satisfy the constraint (strictly, if strict)."""
        if len(y) != len(self.coefficients):
            raise ValueError(f"expected {len(self.coefficients)} outputs, got {len(y)}")
        value = sum((c * v for c, v in zip(self.coefficients, y, strict=True) if c),
                    Fraction(0))
        return value < self.bound if self.strict else value <= self.bound


@dataclass(frozen=True)
class InputBox:
    """The inputs of one case: `lower[i] <= X_i <= upper[i]` (`<` where the flag is set)."""

    lower: tuple[Fraction, ...]
    upper: tuple[Fraction, ...]
    lower_strict: tuple[bool, ...]
    upper_strict: tuple[bool, ...]

    def contains(self, x: Sequence[Fraction]) -> bool:
        """Whether the exact point `x` satisfies every bound (strictly where strict)."""
        if len(x) != len(self.lower):
            raise ValueError(f"expected {len(self.lower)} inputs, got {len(x)}")
        for v, lo, hi, sl, su in zip(x, self.lower, self.upper, self.lower_strict,
                                     self.upper_strict, strict=True):
            if v < lo or v > hi or (sl and v == lo) or (su and v == hi):
                return False
        return True


@dataclass(frozen=True)
class Case:
    """One input box and the unsafe outputs there: an OR (`unsafe`) of ANDs of constraints.

    An empty AND is always true (every output is unsafe); `line` is where the case's input
    bounds start in the file (0 when the file bounds no input)."""

    box: InputBox
    unsafe: tuple[tuple[LinearConstraint, ...], ...]
    line: int

    def is_unsafe(self, y: Sequence[Fraction]) -> bool:
        """Whether the exact outputs `y` lie in the unsafe region of this case."""
        return any(all(c.holds_at(y) for c in conj) for conj in self.unsafe)


@dataclass(frozen=True)
class Property:
    """A parsed VNN-LIB file: the counterexample region as a union of cases."""

    path: str
    num_inputs: int
    num_outputs: int
    cases: tuple[Case, ...]

    def is_counterexample(self, x: Sequence[Fraction], y: Sequence[Fraction]) -> bool:
        """Whether inputs `x` with outputs `y` (exact) satisfy every assert of the file."""
        return any(c.box.contains(x) and c.is_unsafe(y) for c in self.cases)


# -- tokens and s-expressions --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Atom:
    text: str
    line: int
    col: int


@dataclass(frozen=True, slots=True)
class _List:
    items: tuple[_Expr, ...]
    line: int
    col: int


_Expr: TypeAlias = "_Atom | _List"


def _where(path: str, line: int, col: int) -> str:
    return f"{path}:{line}:{col}"


def _show(text: str) -> str:
    """A token for an error message, cut short (a token can be a whole line long)."""
    return repr(text if len(text) <= 40 else text[:40] + "...")


def _lines(path: str, f: BinaryIO) -> Iterator[tuple[int, str]]:
    """The lines of the open file `f`, decoded and numbered from 1."""
    for number, raw in enumerate(f, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataFormatError(_where(path, number, e.start + 1),
                                  "the file is not UTF-8 text") from None
        yield number, text.removeprefix("\ufeff") if number == 1 else text


def _tokens(path: str, lines: Iterator[tuple[int, str]]) -> Iterator[_Atom]:
    """Parentheses and symbols with their positions; comments and blanks dropped."""
    for number, text in lines:
        for m in _TOKEN.finditer(text):
            tok = m.group()
            if tok[0] == ";":
                continue
            if tok[0] in "|\"":
                raise DataFormatError(_where(path, number, m.start() + 1),
                                      f"quoted symbols and strings are not VNN-LIB: {_show(tok)}")
            yield _Atom(tok, number, m.start() + 1)


def _commands(path: str, tokens: Iterator[_Atom]) -> Iterator[_List]:
    """Top-level s-expressions, read with an explicit stack of open lists."""
    stack: list[tuple[_Atom, list[_Expr]]] = []
    for tok in tokens:
        if tok.text == "(":
            if len(stack) >= MAX_DEPTH:
                raise DataFormatError(_where(path, tok.line, tok.col),
                                      f"expressions nest more than {MAX_DEPTH} deep")
            stack.append((tok, []))
        elif tok.text == ")":
            if not stack:
                raise DataFormatError(_where(path, tok.line, tok.col),
                                      "unbalanced parentheses: ')' closes nothing")
            opener, items = stack.pop()
            done = _List(tuple(items), opener.line, opener.col)
            if stack:
                stack[-1][1].append(done)
            else:
                yield done
        elif not stack:
            raise DataFormatError(_where(path, tok.line, tok.col),
                                  f"expected '(' to start a command, got {_show(tok.text)}")
        else:
            stack[-1][1].append(tok)
    if stack:
        opener = stack[-1][0]
        raise DataFormatError(_where(path, opener.line, opener.col),
                              "unbalanced parentheses: this '(' is never closed")


# -- terms -------------------------------------------------------------------------------
_Var = tuple[str, int]  # ("X", i) or ("Y", i)


@dataclass(frozen=True, slots=True)
class _Linear:
    """sum coeffs[v] * v + const."""

    coeffs: dict[_Var, Fraction]
    const: Fraction


def _numeral(text: str) -> Fraction | None:
    """The exact value of a numeral token, or None when `text` is not one."""
    m = _NUMERAL.match(text) or _NUMERAL_DOT.match(text)
    if m is None:
        return None
    sign, whole, frac, exp = m.groups()
    frac = frac or ""
    if len(whole) + len(frac) > _MAX_DIGITS:
        return None
    e = int(exp) if exp is not None else 0
    if abs(e) > _MAX_EXPONENT:
        return None
    value = Fraction(int((whole or "0") + frac), 10 ** len(frac))
    if e:
        value *= Fraction(10) ** e
    return -value if sign else value


@dataclass(frozen=True, slots=True)
class _Atomic:
    """One normalised comparison: sum coeffs[v] * v <= bound (< if strict)."""

    coeffs: dict[_Var, Fraction]
    bound: Fraction
    strict: bool
    line: int
    col: int

    def negated(self) -> _Atomic:
        # not (a <= b) is a > b, i.e. -a < -b; not (a < b) is -a <= -b
        return _Atomic({v: -c for v, c in self.coeffs.items()}, -self.bound,
                       not self.strict, self.line, self.col)

    def constant_truth(self) -> bool | None:
        """The truth of a comparison with no variables left, else None."""
        if self.coeffs:
            return None
        return 0 < self.bound if self.strict else 0 <= self.bound


_Conj = tuple[_Atomic, ...]


class _Reader:
    """Turns commands into declarations and per-assert disjunctive normal forms."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.declared: dict[_Var, tuple[int, int]] = {}
        self.asserts: list[tuple[list[_Conj], int]] = []

    def fail(self, e: _Expr, message: str) -> DataFormatError:
        return DataFormatError(_where(self.path, e.line, e.col), message)

    def command(self, cmd: _List) -> None:
        if not cmd.items or not isinstance(cmd.items[0], _Atom):
            raise self.fail(cmd, "expected a command like (declare-const X_0 Real) or "
                                 "(assert ...)")
        head = cmd.items[0].text
        if head == "declare-const":
            self.declare(cmd)
        elif head == "assert":
            if len(cmd.items) != 2:
                raise self.fail(cmd, f"assert takes one formula, got {len(cmd.items) - 1}")
            self.asserts.append((self.dnf(cmd.items[1], True), cmd.line))
        else:
            raise self.fail(cmd, f"unknown command {_show(head)}: a VNN-LIB file has only "
                                 "declare-const and assert")

    def declare(self, cmd: _List) -> None:
        items = cmd.items
        if len(items) != 3 or not all(isinstance(i, _Atom) for i in items[1:]):
            raise self.fail(cmd, "expected (declare-const NAME Real)")
        name, kind = items[1], items[2]
        assert isinstance(name, _Atom) and isinstance(kind, _Atom)
        m = _VARIABLE.match(name.text)
        if m is None:
            raise self.fail(name, f"cannot declare {_show(name.text)}: VNN-LIB variables are "
                                  "X_i (inputs) and Y_i (outputs)")
        if kind.text != "Real":
            raise self.fail(kind, f"{name.text} must have type Real, got {_show(kind.text)}")
        var = (m.group(1), int(m.group(2)))
        if var in self.declared:
            line, col = self.declared[var]
            raise self.fail(name, f"{name.text} is declared twice (first at line {line}, "
                                  f"column {col})")
        self.declared[var] = (name.line, name.col)

    # formulas -> DNF: a list of conjunctions of atomic comparisons
    def dnf(self, e: _Expr, positive: bool) -> list[_Conj]:
        if isinstance(e, _Atom):
            raise self.fail(e, f"expected a formula such as (<= X_0 1), got {_show(e.text)}")
        if not e.items or not isinstance(e.items[0], _Atom):
            raise self.fail(e, "expected a formula such as (<= X_0 1)")
        head, args = e.items[0].text, e.items[1:]
        if head == "not":
            if len(args) != 1:
                raise self.fail(e, f"not takes one formula, got {len(args)}")
            return self.dnf(args[0], not positive)
        if head in ("and", "or"):
            if not args:
                raise self.fail(e, f"({head}) needs at least one formula")
            parts = [self.dnf(a, positive) for a in args]
            if (head == "and") == positive:
                return self.product(parts, e)
            out = [c for p in parts for c in p]
            if len(out) > MAX_TERMS:
                raise self.fail(e, f"more than {MAX_TERMS} disjuncts")
            return out
        if head in ("<=", ">=", "<", ">"):
            atoms = self.comparison(e, head, args)
            if positive:
                return self.product([self.keep(a) for a in atoms], e)
            return [c for a in atoms for c in self.keep(a.negated())]
        raise self.fail(e, f"unknown formula {_show(head)}: expected and, or, not, <=, >=, <, >")

    @staticmethod
    def keep(a: _Atomic) -> list[_Conj]:
        truth = a.constant_truth()
        if truth is None:
            return [(a,)]
        return [()] if truth else []

    def product(self, parts: list[list[_Conj]], e: _Expr) -> list[_Conj]:
        out: list[_Conj] = [()]
        for p in parts:
            if len(out) * len(p) > MAX_TERMS:
                raise self.fail(e, f"more than {MAX_TERMS} disjuncts once brought to "
                                   "disjunctive normal form")
            out = [a + b for a in out for b in p]
        return out

    def comparison(self, e: _List, head: str, args: Sequence[_Expr]) -> list[_Atomic]:
        if len(args) < 2:
            raise self.fail(e, f"{head} compares at least two terms, got {len(args)}")
        terms = [self.term(a) for a in args]
        out = []
        for a, b in zip(terms, terms[1:], strict=False):
            lo, hi = (a, b) if head in ("<=", "<") else (b, a)
            # lo <= hi  <=>  (lo - hi).coeffs . v <= hi.const - lo.const
            coeffs = dict(lo.coeffs)
            for v, c in hi.coeffs.items():
                coeffs[v] = coeffs.get(v, Fraction(0)) - c
            coeffs = {v: c for v, c in coeffs.items() if c}
            out.append(_Atomic(coeffs, hi.const - lo.const, head in ("<", ">"),
                               e.line, e.col))
        return out

    def term(self, e: _Expr) -> _Linear:
        if isinstance(e, _Atom):
            value = _numeral(e.text)
            if value is not None:
                return _Linear({}, value)
            m = _VARIABLE.match(e.text)
            if m is None:
                raise self.fail(e, f"expected a number or a declared variable, got {_show(e.text)}")
            var = (m.group(1), int(m.group(2)))
            if var not in self.declared:
                raise self.fail(e, f"{e.text} is used but never declared")
            return _Linear({var: Fraction(1)}, Fraction(0))
        if not e.items or not isinstance(e.items[0], _Atom):
            raise self.fail(e, "expected a term such as (+ X_0 1) or (* 2 Y_1)")
        head, args = e.items[0].text, [self.term(a) for a in e.items[1:]]
        if not args:
            raise self.fail(e, f"({head}) needs arguments")
        if head == "+":
            return _sum(args)
        if head == "-":
            if len(args) == 1:
                return _scale(args[0], Fraction(-1))
            return _sum([args[0]] + [_scale(a, Fraction(-1)) for a in args[1:]])
        if head == "*":
            variable = [a for a in args if a.coeffs]
            if len(variable) > 1:
                raise self.fail(e, "non-linear term: a product of two terms with variables")
            factor = Fraction(1)
            for a in args:
                if not a.coeffs:
                    factor *= a.const
            return _scale(variable[0], factor) if variable else _Linear({}, factor)
        if head == "/":
            if len(args) != 2 or args[1].coeffs:
                raise self.fail(e, "(/ t c) divides a term by a constant only")
            if args[1].const == 0:
                raise self.fail(e, "division by zero")
            return _scale(args[0], 1 / args[1].const)
        raise self.fail(e, f"unknown function {_show(head)} in a term: expected +, -, * or /")


def _sum(terms: Sequence[_Linear]) -> _Linear:
    coeffs: dict[_Var, Fraction] = {}
    const = Fraction(0)
    for t in terms:
        const += t.const
        for v, c in t.coeffs.items():
            coeffs[v] = coeffs.get(v, Fraction(0)) + c
    return _Linear({v: c for v, c in coeffs.items() if c}, const)


def _scale(t: _Linear, k: Fraction) -> _Linear:
    if k == 0:
        return _Linear({}, Fraction(0))
    return _Linear({v: c * k for v, c in t.coeffs.items()}, t.const * k)


# -- cases -------------------------------------------------------------------------------
def _count(reader: _Reader, kind: str, limit: int | None, what: str) -> int:
    """How many variables of `kind` (X or Y) the file declares (they must be 0..n-1); at
    most `limit` when given."""
    idx = sorted(i for k, i in reader.declared if k == kind)
    n = len(idx)
    if idx and idx[-1] != n - 1:
        missing = next(i for i in range(n + 1) if i not in set(idx))
        line, col = reader.declared[(kind, idx[-1])]
        raise DataFormatError(_where(reader.path, line, col),
                              f"{kind}_{idx[-1]} is declared but {kind}_{missing} is not: "
                              f"declare {kind}_0 .. {kind}_{idx[-1]}")
    if limit is not None and n > limit:
        line, col = reader.declared[(kind, limit)]
        raise DataFormatError(_where(reader.path, line, col),
                              f"{kind}_{limit}: the model has only {limit} {what}")
    return n


def _split(reader: _Reader, conj: _Conj) -> tuple[_Conj, _Conj]:
    """The input atoms and output atoms of a conjunction; an atom with both raises."""
    ins, outs = [], []
    for a in conj:
        kinds = {k for k, _ in a.coeffs}
        if len(kinds) > 1:
            raise DataFormatError(_where(reader.path, a.line, a.col),
                                  "a constraint mixes inputs X and outputs Y; only bounds on "
                                  "single inputs and linear constraints on outputs are allowed")
        if "X" in kinds:
            if len(a.coeffs) > 1:
                names = ", ".join(f"X_{i}" for _, i in sorted(a.coeffs))
                raise DataFormatError(_where(reader.path, a.line, a.col),
                                      f"an input constraint over {names}: only bounds on a "
                                      "single X_i are supported")
            ins.append(a)
        else:
            outs.append(a)
    return tuple(ins), tuple(outs)


def _box(reader: _Reader, atoms: _Conj, n: int, line: int) -> InputBox:
    """The tightest bounds the input atoms give each X_i; both sides must be bounded."""
    lower: list[Fraction | None] = [None] * n
    upper: list[Fraction | None] = [None] * n
    ls, us = [False] * n, [False] * n
    for a in atoms:
        ((_, i), c), = a.coeffs.items()
        v = a.bound / c  # c X_i <= bound: an upper bound on X_i if c > 0, else a lower one
        if c > 0:
            cur = upper[i]
            if cur is None or v < cur or (v == cur and a.strict):
                upper[i], us[i] = v, a.strict
        else:
            cur = lower[i]
            if cur is None or v > cur or (v == cur and a.strict):
                lower[i], ls[i] = v, a.strict
    for i in range(n):
        lo, hi = lower[i], upper[i]
        if lo is None or hi is None:
            decl = reader.declared[("X", i)]
            side = "lower" if lo is None else "upper"
            place = f"the case whose input bounds start at line {line}" if line else \
                "the file (no assert bounds any input)"
            raise DataFormatError(_where(reader.path, *decl),
                                  f"X_{i} has no {side} bound in {place}; every input needs "
                                  "both")
        if lo > hi or (lo == hi and (ls[i] or us[i])):
            raise DataFormatError(_where(reader.path, line or reader.declared[("X", i)][0], 1),
                                  f"X_{i} has an empty range: lower bound {lo} "
                                  f"{'>=' if lo == hi else '>'} upper bound {hi}")
    return InputBox(tuple(x for x in lower if x is not None),
                    tuple(x for x in upper if x is not None), tuple(ls), tuple(us))


def _constraint(a: _Atomic, m: int) -> LinearConstraint:
    coeffs = [Fraction(0)] * m
    for (_, j), c in a.coeffs.items():
        coeffs[j] = c
    return LinearConstraint(tuple(coeffs), a.bound, a.strict)


def _cases(reader: _Reader, n: int, m: int) -> tuple[Case, ...]:
    # Asserts on outputs only are combined once (their product is shared by every case);
    # asserts that bound inputs multiply out into the cases' boxes.
    outputs: list[_Conj] = [()]
    inputs: list[tuple[_Conj, _Conj, int]] = [((), (), 0)]
    for dnf, line in reader.asserts:
        split = [_split(reader, c) for c in dnf]
        if all(not i for i, _ in split):
            if len(outputs) * len(dnf) > MAX_TERMS:
                raise DataFormatError(_where(reader.path, line, 1), f"more than {MAX_TERMS}"
                                      " output disjuncts once the asserts are combined")
            outputs = [a + o for a in outputs for _, o in split]
        else:
            if len(inputs) * len(dnf) > MAX_TERMS:
                raise DataFormatError(_where(reader.path, line, 1), f"more than {MAX_TERMS}"
                                      " input cases once the asserts are combined")
            inputs = [(i0 + i, o0 + o, l0 or (i[0].line if i else 0))
                      for i0, o0, l0 in inputs for i, o in split]
    if len(inputs) * len(outputs) > MAX_TERMS:
        raise DataFormatError(reader.path, f"{len(inputs)} input cases times {len(outputs)} "
                              f"output disjuncts is more than {MAX_TERMS}")
    merged: dict[InputBox, tuple[list[tuple[LinearConstraint, ...]], int]] = {}
    for ins, outs, line in inputs:
        box = _box(reader, ins, n, line)
        unsafe = merged.setdefault(box, ([], line))[0]
        for o in outputs:
            unsafe.append(tuple(_constraint(a, m) for a in outs + o))
    return tuple(Case(box, tuple(u), line) for box, (u, line) in merged.items() if u)


def parse_vnnlib(lines: Iterator[tuple[int, str]], path: str = "<vnnlib>", *,
                 num_inputs: int | None = None, num_outputs: int | None = None) -> Property:
    """The property in numbered text lines (see `read_vnnlib`); `path` names them in errors."""
    reader = _Reader(path)
    for cmd in _commands(path, _tokens(path, lines)):
        reader.command(cmd)
    n = _count(reader, "X", num_inputs, "inputs")
    if num_inputs is not None and n != num_inputs:
        raise DataFormatError(path, f"the file declares {n} inputs X_i, the model has "
                              f"{num_inputs}")
    m = _count(reader, "Y", num_outputs, "outputs")
    m = m if num_outputs is None else num_outputs
    return Property(path, n, m, _cases(reader, n, m))


def read_vnnlib(path: str | os.PathLike[str], *, num_inputs: int | None = None,
                num_outputs: int | None = None, max_bytes: int = MAX_BYTES) -> Property:
    """The property in the VNN-LIB file at `path`, as exact cases (module docstring).

    With `num_inputs`, the file must declare exactly that many inputs; with `num_outputs`,
    it may name no output beyond them (constraint vectors then have `num_outputs` entries).
    Bad files raise `DataFormatError` naming the file, line and column."""
    name = os.fspath(path)
    check_file_size(name, max_bytes, "property file")  # before reading anything
    try:
        with open(name, "rb") as f:
            return parse_vnnlib(_lines(name, f), name, num_inputs=num_inputs,
                                num_outputs=num_outputs)
    except OSError as e:
        raise DataFormatError(name, f"cannot read the property file: {e.strerror}") from None


# -- writing -----------------------------------------------------------------------------
def exact_decimal(q: Fraction, max_digits: int | None = None) -> str | None:
    """`q` as an exact decimal numeral, or None when it has none (its denominator has a
    prime factor other than 2 and 5) or, given `max_digits`, when it needs more than that
    many digits after the point or its numerator has more than that many digits."""
    d = q.denominator
    twos = fives = 0
    while d % 2 == 0:
        d //= 2
        twos += 1
    while d % 5 == 0:
        d //= 5
        fives += 1
    digits = max(twos, fives)
    if d != 1 or max_digits is not None and (
            digits > max_digits or len(str(abs(q.numerator))) > max_digits):
        return None
    if digits == 0:
        return str(q.numerator)
    scaled = abs(q.numerator) * 10**digits // q.denominator
    text = str(scaled).rjust(digits + 1, "0")
    return f"{'-' if q < 0 else ''}{text[:-digits]}.{text[-digits:]}"


def _number(q: Fraction) -> str:
    """`q` as a VNN-LIB numeral: an exact decimal when there is one, else (/ p q)."""
    text = exact_decimal(q)
    return f"(/ {q.numerator} {q.denominator})" if text is None else text


def _format_constraint(c: LinearConstraint) -> str:
    terms = [f"(* {_number(k)} Y_{j})" for j, k in enumerate(c.coefficients) if k]
    lhs = terms[0] if len(terms) == 1 else f"(+ {' '.join(terms)})" if terms else "0"
    return f"({'<' if c.strict else '<='} {lhs} {_number(c.bound)})"


def format_vnnlib(prop: Property) -> str:
    """VNN-LIB text that `parse_vnnlib` reads back as `prop` (one `or` of the cases)."""
    out = [f"; {len(prop.cases)} cases"]
    out += [f"(declare-const X_{i} Real)" for i in range(prop.num_inputs)]
    out += [f"(declare-const Y_{j} Real)" for j in range(prop.num_outputs)]
    cases = []
    for case in prop.cases:
        b = case.box
        bounds = []
        for i in range(prop.num_inputs):
            bounds.append(f"({'>' if b.lower_strict[i] else '>='} X_{i} {_number(b.lower[i])})")
            bounds.append(f"({'<' if b.upper_strict[i] else '<='} X_{i} {_number(b.upper[i])})")
        conjs = [f"(and {' '.join(_format_constraint(c) for c in conj)})" if conj
                 else "(<= 0 0)" for conj in case.unsafe]
        cases.append(f"  (and {' '.join(bounds)}\n    (or {' '.join(conjs)}))")
    if cases:
        out.append("(assert (or\n" + "\n".join(cases) + "\n))")
    return "\n".join(out) + "\n"
