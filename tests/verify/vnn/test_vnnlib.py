"""The VNN-LIB reader: exact numbers, the case structure, strictness, and typed errors."""

from __future__ import annotations

import glob
import os
from fractions import Fraction
from pathlib import Path

import pytest

from torchlean.spec.errors import DataFormatError
from torchlean.verify.vnn.vnnlib import (
    MAX_DEPTH,
    LinearConstraint,
    Property,
    parse_vnnlib,
    read_vnnlib,
)

F = Fraction
_ROOT = Path(__file__).resolve().parents[3]  # the repository root
# shared/ sits beside the main checkout (../shared), in it, or two up from a worktree
BENCH = next((str(d / "shared" / "benchmarks" / "vnncomp2021") for d in
              (_ROOT, _ROOT.parent, _ROOT.parent.parent)
              if (d / "shared" / "benchmarks" / "vnncomp2021").is_dir()), "")


def parse(text: str, **kw: int) -> Property:
    return parse_vnnlib(iter(enumerate(text.splitlines(keepends=True), start=1)), "p.vnnlib",
                        **kw)


def decl(n: int, m: int) -> str:
    return "".join(f"(declare-const X_{i} Real)\n" for i in range(n)) + "".join(
        f"(declare-const Y_{j} Real)\n" for j in range(m))


def box(n: int, lo: str = "0", hi: str = "1") -> str:
    return "".join(f"(assert (>= X_{i} {lo}))\n(assert (<= X_{i} {hi}))\n" for i in range(n))


def test_acas_style_property_is_one_case_with_exact_decimals() -> None:
    p = parse(decl(2, 3) + "; comment (with parens\n" + box(1, "-0.5", "0.679857769")
              + "(assert (<= X_1 1e-3)) (assert (>= X_1 (- 0.5)))\n"
              + "(assert (<= Y_1 Y_0))\n(assert (<= Y_2 Y_0))\n")
    assert (p.num_inputs, p.num_outputs, len(p.cases)) == (2, 3, 1)
    c = p.cases[0]
    assert c.box.lower == (F(-1, 2), F(-1, 2))
    assert c.box.upper == (F(679857769, 10**9), F(1, 1000))
    # one conjunction: Y_1 - Y_0 <= 0 and Y_2 - Y_0 <= 0
    assert c.unsafe == ((LinearConstraint((F(-1), F(1), F(0)), F(0)),
                         LinearConstraint((F(-1), F(0), F(1)), F(0))),)


def test_numerals_are_exact() -> None:
    p = parse(decl(1, 1) + "(assert (>= X_0 -2.5E-2)) (assert (<= X_0 1.25e+2))"
              "(assert (<= Y_0 .5))")
    assert p.cases[0].box.lower == (F(-1, 40),)
    assert p.cases[0].box.upper == (F(125),)
    assert p.cases[0].unsafe[0][0].bound == F(1, 2)
    # 0.1 is kept as the decimal, not as the binary64 nearest to it
    q = parse(decl(1, 1) + "(assert (>= X_0 0.1)) (assert (<= X_0 0.1)) (assert (<= Y_0 0))")
    assert q.cases[0].box.lower == (F(1, 10),)


def test_linear_terms_are_normalised() -> None:
    p = parse(decl(1, 3) + box(1) + "(assert (>= (+ (* 2 Y_0) (- Y_1 (* Y_2 0.5)) 3) "
              "(* 4 (- 1))))")
    # 2 Y0 + Y1 - Y2/2 + 3 >= -4  <=>  -2 Y0 - Y1 + Y2/2 <= 7
    assert p.cases[0].unsafe == ((LinearConstraint((F(-2), F(-1), F(1, 2)), F(7)),),)
    q = parse(decl(1, 1) + box(1) + "(assert (<= (/ Y_0 3) 1))")
    assert q.cases[0].unsafe[0][0] == LinearConstraint((F(1, 3),), F(1))


def test_disjunction_of_outputs_and_of_input_boxes() -> None:
    text = decl(1, 2) + """
(assert (or (and (>= X_0 0) (<= X_0 1)) (and (>= X_0 2) (<= X_0 3))))
(assert (or (and (>= Y_0 Y_1)) (and (<= Y_0 -1) (<= Y_1 -1))))
"""
    p = parse(text)
    assert [c.box.lower for c in p.cases] == [(F(0),), (F(2),)]
    for c in p.cases:
        assert len(c.unsafe) == 2 and len(c.unsafe[1]) == 2
    assert p.is_counterexample([F(5, 2)], [F(3), F(2)])
    assert not p.is_counterexample([F(3, 2)], [F(3), F(2)])  # between the boxes
    assert not p.is_counterexample([F(1)], [F(0), F(2)])


def test_vnncomp2022_style_disjuncts_pair_boxes_with_outputs() -> None:
    text = decl(1, 1) + """
(assert (or (and (>= X_0 0) (<= X_0 1) (>= Y_0 5))
            (and (>= X_0 1) (<= X_0 2) (<= Y_0 -5))))
"""
    p = parse(text)
    assert len(p.cases) == 2
    assert p.is_counterexample([F(1, 2)], [F(6)])
    assert not p.is_counterexample([F(3, 2)], [F(6)])
    assert p.is_counterexample([F(3, 2)], [F(-6)])


def test_cases_with_the_same_box_are_merged() -> None:
    text = decl(1, 1) + """
(assert (or (and (>= X_0 0) (<= X_0 1) (>= Y_0 5)) (and (<= X_0 1) (>= X_0 0) (<= Y_0 -5))))
"""
    p = parse(text)
    assert len(p.cases) == 1 and len(p.cases[0].unsafe) == 2


def test_strict_comparisons_are_flags_used_when_checking_points() -> None:
    p = parse(decl(1, 1) + "(assert (> X_0 0)) (assert (<= X_0 1)) (assert (< Y_0 2))")
    c = p.cases[0]
    assert c.box.lower_strict == (True,) and c.box.upper_strict == (False,)
    assert c.unsafe[0][0].strict
    assert not p.is_counterexample([F(0)], [F(1)])  # X_0 = 0 is excluded
    assert not p.is_counterexample([F(1)], [F(2)])  # Y_0 = 2 is excluded
    assert p.is_counterexample([F(1)], [F(1)])


def test_not_is_normalised_exactly() -> None:
    p = parse(decl(1, 1) + box(1) + "(assert (not (or (> Y_0 1) (< Y_0 -1))))")
    # not (Y > 1 or Y < -1) = (Y <= 1 and Y >= -1), both non-strict
    ((a, b),) = p.cases[0].unsafe
    assert (a, b) == (LinearConstraint((F(1),), F(1)), LinearConstraint((F(-1),), F(1)))
    q = parse(decl(1, 1) + box(1) + "(assert (not (and (<= Y_0 1) (>= Y_0 -1))))")
    assert q.cases[0].unsafe == ((LinearConstraint((F(-1),), F(-1), True),),
                                 (LinearConstraint((F(1),), F(-1), True),))


def test_chained_and_constant_comparisons() -> None:
    p = parse(decl(1, 1) + "(assert (<= 0 X_0 1)) (assert (<= 1 2)) (assert (<= Y_0 3))")
    assert p.cases[0].box.lower == (F(0),) and p.cases[0].box.upper == (F(1),)
    # a false constant disjunct drops out
    q = parse(decl(1, 1) + box(1) + "(assert (or (<= 2 1) (<= Y_0 3)))")
    assert len(q.cases[0].unsafe) == 1
    # an always-false file has no cases: nothing can violate it
    r = parse(decl(1, 1) + box(1) + "(assert (< 1 1))")
    assert r.cases == ()


def test_tightest_bounds_win() -> None:
    p = parse(decl(1, 1) + box(1, "0", "1") + "(assert (>= X_0 0.25)) (assert (< X_0 1))"
              "(assert (<= Y_0 0))")
    b = p.cases[0].box
    assert (b.lower, b.upper, b.upper_strict) == ((F(1, 4),), (F(1),), (True,))


def test_scaled_and_negated_input_bounds() -> None:
    # -X_1 >= -3 is X_1 <= 3; -X_1 / 4 <= 1 is X_1 >= -4; -X_0 >= 1 is an UPPER bound
    text = ("(assert (>= (- X_1) -3)) (assert (<= (/ (- X_1) 4) 1)) (assert (<= Y_0 0))"
            "(assert (<= (* 2 X_0) 1)) ")
    with pytest.raises(DataFormatError, match="X_0 has no lower bound"):
        parse(decl(2, 1) + text + "(assert (>= (- X_0) 1))")
    p = parse(decl(2, 1) + text + "(assert (<= (- X_0) 1))")
    assert p.cases[0].box.lower == (F(-1), F(-4))
    assert p.cases[0].box.upper == (F(1, 2), F(3))
    q = parse(decl(1, 1) + "(assert (<= (* 2 X_0) 1)) (assert (>= (* -4 X_0) -8))"
              "(assert (< (* -1 X_0) 3)) (assert (<= Y_0 0))")
    assert q.cases[0].box.lower == (F(-3),) and q.cases[0].box.lower_strict == (True,)
    assert q.cases[0].box.upper == (F(1, 2),)


def test_output_count_from_the_model() -> None:
    p = parse(decl(1, 2) + box(1) + "(assert (<= Y_0 Y_1))", num_outputs=4)
    assert p.num_outputs == 4
    assert p.cases[0].unsafe[0][0].coefficients == (F(1), F(-1), F(0), F(0))
    with pytest.raises(DataFormatError, match=r"p.vnnlib:4:16: Y_2: the model has only 2"):
        parse(decl(1, 3) + box(1) + "(assert (<= Y_2 0))", num_outputs=2)
    with pytest.raises(DataFormatError, match="declares 1 inputs X_i, the model has 2"):
        parse(decl(1, 1) + box(1) + "(assert (<= Y_0 0))", num_inputs=2)


@pytest.mark.parametrize(("text", "message"), [
    (decl(1, 1) + box(1) + "(assert (<= Y_0 X_9))", r":5:17: X_9 is used but never declared"),
    (decl(2, 1) + box(2) + "(assert (<= (* X_0 X_1) 1))", r":8:13: non-linear term"),
    (decl(2, 1) + box(2) + "(assert (<= (+ X_0 X_1) 1))", r":8:9: an input constraint over "
     r"X_0, X_1"),
    (decl(1, 1) + box(1) + "(assert (<= Y_0 X_0))", r":5:9: a constraint mixes inputs"),
    (decl(1, 1) + box(1) + "(assert (<= Y_0 1)", r":5:1: unbalanced parentheses: this '\(' "
     "is never closed"),
    (decl(1, 1) + box(1) + "(assert (<= Y_0 1)))", r":5:20: unbalanced parentheses: '\)'"),
    (decl(1, 1) + "(assert (>= X_0 0)) (assert (<= Y_0 1))", r":1:16: X_0 has no upper bound"),
    (decl(1, 1) + "(assert (<= Y_0 1))", r":1:16: X_0 has no lower bound in the file"),
    (decl(1, 1) + box(1, "1", "0.5") + "(assert (<= Y_0 1))", r":3:1: X_0 has an empty range: "
     r"lower bound 1 > upper bound 1/2"),
    (decl(1, 1) + "(assert (> X_0 1)) (assert (<= X_0 1)) (assert (<= Y_0 1))",
     r"X_0 has an empty range: lower bound 1 >= upper bound 1"),
    (decl(1, 1) + box(1) + "(check-sat)", r":5:1: unknown command 'check-sat'"),
    (decl(1, 1) + box(1) + "(assert (<= (exp Y_0) 1))", r":5:13: unknown function 'exp'"),
    (decl(1, 1) + box(1) + "(assert (=> Y_0 1))", r":5:9: unknown formula '=>'"),
    (decl(1, 1) + "(declare-const X_0 Real)", r":3:16: X_0 is declared twice \(first at line 1"),
    ("(declare-const X_0 Int)", r":1:20: X_0 must have type Real"),
    ("(declare-const Z Real)", r":1:16: cannot declare 'Z'"),
    ("(declare-const X_1 Real)", r"X_1 is declared but X_0 is not"),
    (decl(1, 1) + box(1) + "(assert (<= Y_0 1e99999))", r"expected a number or a declared"),
    (decl(1, 1) + box(1) + "(assert (<= Y_0 |a b|))", r"quoted symbols"),
    (decl(1, 1) + box(1) + "(assert (<= (/ Y_0 0) 1))", r"division by zero"),
    (decl(1, 1) + box(1) + "assert", r":5:1: expected '\(' to start a command"),
])
def test_bad_files_name_the_place(text: str, message: str) -> None:
    with pytest.raises(DataFormatError, match=message) as err:
        parse(text)
    assert err.value.where.startswith("p.vnnlib")


def test_disjunctive_normal_forms_are_capped() -> None:
    # 20 asserts of 2 output disjuncts each: 2^20 disjuncts once combined
    two = "(assert (or (<= Y_0 0) (>= Y_0 1)))"
    with pytest.raises(DataFormatError, match=r"p.vnnlib:\d+:1: more than 100000 output"):
        parse(decl(1, 1) + box(1) + two * 20)
    boxes = "(assert (or (and (<= 0 X_0 1)) (and (<= 2 X_0 3))))"
    outs = "(assert (or " + " ".join(f"(<= Y_0 {k})" for k in range(400)) + "))"
    with pytest.raises(DataFormatError, match=r"input cases times 400 output disjuncts"):
        parse(decl(1, 1) + boxes * 9 + outs)


def test_long_tokens_are_cut_short_in_messages() -> None:
    with pytest.raises(DataFormatError, match=r"got '1{40}\.\.\.'$"):
        parse(decl(1, 1) + box(1) + "(assert (<= Y_0 " + "1" * 5000 + "))")


def test_deep_nesting_is_a_typed_error_not_a_recursion_error() -> None:
    deep = "(+ " * 100_000 + "Y_0" + ")" * 100_000
    with pytest.raises(DataFormatError, match=f"nest more than {MAX_DEPTH} deep"):
        parse(decl(1, 1) + box(1) + f"(assert (<= {deep} 1))")


def test_size_limit_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.vnnlib"
    with open(path, "wb") as f:  # a sparse file of 3 GiB: nothing is read
        f.truncate(3 * 2**30)
    with pytest.raises(DataFormatError, match=r"big.vnnlib: the property file has 3221225472"):
        read_vnnlib(path)
    small = tmp_path / "s.vnnlib"
    small.write_text(decl(1, 1) + box(1) + "(assert (<= Y_0 1))")
    with pytest.raises(DataFormatError, match="more than the limit of 10"):
        read_vnnlib(small, max_bytes=10)
    assert len(read_vnnlib(small).cases) == 1


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="cannot read the property file"):
        read_vnnlib(tmp_path / "nope.vnnlib")
    bad = tmp_path / "bad.vnnlib"
    bad.write_bytes(b"(declare-const X_0 Real)\n; caf\xe9\n")
    with pytest.raises(DataFormatError, match=r"bad.vnnlib:2:6: the file is not UTF-8"):
        read_vnnlib(bad)


BENCH_FILES = sorted(glob.glob(os.path.join(BENCH, "**", "*.vnnlib"), recursive=True)) \
    if BENCH else []


@pytest.mark.skipif(not BENCH_FILES, reason="vnncomp2021 benchmarks not present")
def test_every_vnncomp2021_property_parses() -> None:
    counts: dict[str, int] = {}
    for path in BENCH_FILES:
        p = read_vnnlib(path)
        family = os.path.relpath(path, BENCH).split(os.sep)[0]
        counts[family] = counts.get(family, 0) + len(p.cases)
        for c in p.cases:  # every input is bounded on both sides, with lower <= upper
            assert all(lo <= hi for lo, hi in zip(c.box.lower, c.box.upper, strict=True))
            assert c.unsafe
    print("vnncomp2021 cases per benchmark:", counts)
    assert len(BENCH_FILES) == 110
    assert counts == {"acasxu": 4, "eran": 36, "mnistfc": 30, "verivital": 40}
