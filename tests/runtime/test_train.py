"""Tasks, the runner, fit loops, hooks, flags and checkpoints."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import torchlean as tl
from torchlean.runtime.data.dataset import TensorDataset
from torchlean.runtime.data.loader import batch_loader
from torchlean.runtime.flat import FlatGrads
from torchlean.spec import DataFormatError

GRID = np.linspace(-1, 1, 5)
X = np.array([[a, b] for a in GRID for b in GRID])
Y = X[:, :1] ** 2 + X[:, 1:] ** 2


def mlp(hidden: int = 8) -> Any:
    return tl.nn.sequential(tl.nn.linear(2, hidden), tl.nn.relu(), tl.nn.linear(hidden, 1))


def grid(dtype: str = "float") -> TensorDataset:
    return TensorDataset(tl.tensor(X, dtype), tl.tensor(Y, dtype))


def fit(dtype: str, backend: str = "eager", n: int = 200, **kw: Any) -> tl.train.Runner:
    task = tl.train.regression(tl.nn.build(mlp(), seed=0))
    r = tl.train.runner(task, dtype=dtype, backend=backend)
    opt = kw.pop("optimizer", tl.optim.adam(0.03))
    tl.train.fit_dataset(task, r, tl.train.steps(n, optimizer=opt, log_every=0, **kw), grid())
    return r


@pytest.mark.parametrize("dtype", ["float", "float32", "ieee32exec"])
def test_quickstart_reduces_the_loss_tenfold(dtype: str) -> None:
    task = tl.train.regression(tl.nn.build(mlp(), seed=0))
    r = tl.train.runner(task, dtype=dtype)
    cfg = tl.train.steps(200, optimizer=tl.optim.adam(0.03), log_every=0)
    report = tl.train.fit_dataset(task, r, cfg, grid())
    assert report.loss_before / report.loss_after >= 10, report.summary()
    assert len(report.losses) == report.steps == 200 and report.steps_per_second > 0


def test_exact_sgd_run_is_exact_and_descends() -> None:
    task = tl.train.regression(tl.nn.build(mlp(4), seed=0))
    r = tl.train.runner(task, dtype="exact")
    cfg = tl.train.steps(3, optimizer=tl.optim.sgd(Fraction(1, 8)), log_every=0)
    report = tl.train.fit_dataset(task, r, cfg, grid("exact"))
    assert all(isinstance(v, Fraction) for v in r.flat.numpy())
    assert report.loss_after < report.loss_before


@pytest.mark.parametrize("dtype", ["float", "ieee32exec", "exact"])
def test_compiled_training_equals_eager_bit_for_bit(dtype: str) -> None:
    kw: dict[str, Any] = (
        {"n": 3, "optimizer": tl.optim.sgd(Fraction(1, 8))}
        if dtype == "exact"
        else {"n": 30, "batch_size": 7}
    )
    eager, compiled = fit(dtype, "eager", **kw), fit(dtype, "compiled", **kw)
    a, b = eager.flat.numpy(), compiled.flat.numpy()
    assert a.dtype == b.dtype and (a == b).all() if dtype == "exact" else a.tobytes() == b.tobytes()


def test_ieee32exec_training_is_reproducible() -> None:
    assert (
        fit("ieee32exec", n=100).flat.numpy().tobytes()
        == fit("ieee32exec", n=100).flat.numpy().tobytes()
    )


def test_killed_and_resumed_fit_is_bit_identical(tmp_path: Path) -> None:
    opt = tl.optim.adam(0.03)
    task = tl.train.regression(tl.nn.build(mlp(), seed=0))
    whole = tl.train.runner(task, dtype="ieee32exec")
    tl.train.fit_dataset(task, whole, tl.train.steps(40, opt, 0, batch_size=4), grid())
    first = tl.train.runner(task, dtype="ieee32exec")
    tl.train.fit_dataset(task, first, tl.train.steps(15, opt, 0, batch_size=4), grid())
    first.save(tmp_path / "ck.json")
    resumed = tl.train.runner(task, dtype="ieee32exec").set_optimizer(opt)
    resumed.load(tmp_path / "ck.json")
    tl.train.fit_dataset(task, resumed, tl.train.steps(25, opt, 0, batch_size=4), grid())
    assert resumed.step == whole.step == 40
    assert resumed.flat.numpy().tobytes() == whole.flat.numpy().tobytes()


def test_loading_another_models_checkpoint_changes_nothing(tmp_path: Path) -> None:
    r = fit("float32", n=5)
    r.save(tmp_path / "ck.json")
    other = tl.train.runner(tl.train.regression(tl.nn.build(mlp(4), seed=0)), dtype="float32")
    before = other.flat.numpy().copy()
    with pytest.raises(DataFormatError, match="different model"):
        other.load(tmp_path / "ck.json")
    assert (other.flat.numpy() == before).all()
    wrong_dtype = tl.train.runner(r.task, dtype="float")
    with pytest.raises(DataFormatError, match="dtype 'float32'"):
        wrong_dtype.load(tmp_path / "ck.json")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(version=2), "version 2"),
        (lambda d: d.pop("step"), "missing field 'step'"),
        (lambda d: d["params"]["0.weight"].update(shape=[3, 3]), "shape"),
        (lambda d: d["params"]["0.bias"]["data"].__setitem__(0, "__import__('os')"), "0.bias"),
        (lambda d: d.update(format="other"), "not a TorchLean checkpoint"),
    ],
)
def test_malformed_checkpoints_are_rejected(tmp_path: Path, edit: Any, message: str) -> None:
    r = fit("float32", n=2)
    path = tmp_path / "ck.json"
    r.save(path)
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    fresh = tl.train.runner(r.task, dtype="float32").set_optimizer(tl.optim.adam(0.03))
    with pytest.raises(DataFormatError, match=message):
        fresh.load(path)


def test_truncated_checkpoint_names_line_and_column(tmp_path: Path) -> None:
    r = fit("float32", n=2)
    r.save(tmp_path / "ck.json")
    (tmp_path / "ck.json").write_text((tmp_path / "ck.json").read_text()[:50])
    with pytest.raises(DataFormatError, match=r"line 1 column"):
        r.load(tmp_path / "ck.json")


def test_save_writes_no_partial_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = fit("float32", n=2)
    target = tmp_path / "ck.json"
    target.write_text("previous")

    def broken(*_: Any, **__: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken)
    with pytest.raises(OSError, match="disk full"):
        r.save(target)
    assert target.read_text() == "previous" and len(list(tmp_path.iterdir())) == 1


def test_fit_loader_epochs_hooks_and_early_stop() -> None:
    task = tl.train.regression(tl.nn.build(mlp(), seed=0))
    r = tl.train.runner(task, dtype="float")
    seen: list[int] = []
    hooks = tl.train.Hooks(on_epoch=lambda e, loss: seen.append(e) or e == 2)
    loader = batch_loader(grid(), batch_size=5, seed=1)
    report = tl.train.fit_loader(
        task, r, tl.train.epochs(10, tl.optim.adam(0.03), 0), loader, hooks
    )
    assert seen == [0, 1, 2] and report.stopped_early and report.steps == 3 * len(loader)
    assert len(report.epoch_losses) == 3 and report.loss_after < report.loss_before


def test_classification_reports_accuracy() -> None:
    xs = np.array([[1.0, 0.0], [0.0, 1.0]] * 4)
    labels = np.array([0.0, 1.0] * 4)
    model = tl.nn.build(tl.nn.sequential(tl.nn.linear(2, 2)), seed=0)
    task = tl.train.classification(model)
    r = tl.train.runner(task, dtype="float")
    ds = TensorDataset(tl.tensor(xs), tl.tensor(labels))
    report = tl.train.fit_dataset(task, r, tl.train.steps(60, tl.optim.adam(0.1), 0), ds)
    assert report.metrics["accuracy"] == 1.0


def test_train_and_eval_mode_and_update_without_optimizer() -> None:
    r = tl.train.runner(tl.train.regression(tl.nn.build(mlp(), seed=0)))
    assert r.eval().mode == "eval" and r.train().mode == "train"
    _, grads, _ = r.loss_and_grads(X[:2], Y[:2])
    with pytest.raises(RuntimeError, match="no optimizer"):
        r.update(grads)


def test_report_json_log(tmp_path: Path) -> None:
    task = tl.train.regression(tl.nn.build(mlp(), seed=0))
    r = tl.train.runner(task, dtype="float")
    report = tl.train.fit_dataset(task, r, tl.train.steps(5, tl.optim.adam(0.03), 0), grid())
    report.write(str(tmp_path / "log.json"))
    saved = json.loads((tmp_path / "log.json").read_text())
    assert saved["steps"] == 5 and saved["losses"] == report.losses


# -- flags ---------------------------------------------------------------------------------
def test_flags_parse_and_leave_the_rest() -> None:
    cfg, rest = tl.train.parse_flags(
        [
            "--steps",
            "200",
            "--dtype",
            "float",
            "--backend",
            "compiled",
            "--cpu",
            "--lr",
            "0.1",
            "--x",
            "1",
        ],
        flags=tl.train.Flags(steps=10, lr=0.5),
    )
    assert (cfg.steps, cfg.dtype, cfg.backend, cfg.device, cfg.lr) == (
        200,
        "float",
        "compiled",
        "cpu",
        0.1,
    )
    assert rest == ["--x", "1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dtype", "float16"], "invalid choice: 'float16'"),
        (["--backend", "jit"], "invalid choice: 'jit'"),
        (["--steps", "0"], "positive integer, got '0'"),
        (["--lr", "fast"], "expected a number, got 'fast'"),
        (["--cpu", "--cuda"], "not allowed with"),
        (["--steps"], "expected one argument"),
    ],
)
def test_bad_flags_are_named(argv: list[str], message: str) -> None:
    with pytest.raises(tl.train.UsageError, match=message):
        tl.train.parse_flags(argv, flags=tl.train.Flags(steps=10, lr=0.5))


def test_run_builds_the_runner_and_rejects_unknown_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def task(seed: int) -> tl.train.Task:
        return tl.train.regression(tl.nn.build(mlp(), seed=seed))

    got = tl.train.run(
        task,
        ["--dtype", "ieee32exec", "--seed", "3"],
        lambda r, cfg, rest: (r.field.name, r.model.seed, rest),
    )
    assert got == ("ieee32exec", 3, [])
    with pytest.raises(SystemExit) as info:
        tl.train.run(task, ["--bogus"], lambda r, cfg, rest: None)
    assert info.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_cuda_without_a_gpu_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed: this test is for machines without it")
    except ImportError:
        pass
    with pytest.raises(SystemExit):
        tl.train.run(
            tl.train.regression(tl.nn.build(mlp(), seed=0)), ["--cuda"], lambda r, cfg, rest: None
        )
    assert "CuPy is not installed" in capsys.readouterr().err


TRAIN_AND_HASH = """
import hashlib, numpy as np, torchlean as tl
from torchlean.runtime.data.dataset import TensorDataset
g = np.linspace(-1, 1, 5); x = np.array([[a, b] for a in g for b in g])
ds = TensorDataset(tl.tensor(x), tl.tensor((x ** 2).sum(1, keepdims=True)))
model = tl.nn.sequential(tl.nn.linear(2, 8), tl.nn.relu(), tl.nn.linear(8, 1))
task = tl.train.regression(tl.nn.build(model, seed=0))
r = tl.train.runner(task, dtype="ieee32exec")
tl.train.fit_dataset(task, r, tl.train.steps(100, tl.optim.adam(0.03), 0, batch_size=5), ds)
print(hashlib.sha256(r.flat.numpy().tobytes()).hexdigest())
"""


def test_ieee32exec_training_ignores_the_blas_thread_count(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    digests = set()
    for threads in ("1", "2"):
        env = {**os.environ, "OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
        out = subprocess.run(
            [sys.executable, "-c", TRAIN_AND_HASH],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1, digests


def test_report_plot_draws_the_curve_or_names_the_extra(tmp_path: Path) -> None:
    report = tl.train.FitReport(1.0, 0.5, losses=[1.0, 0.7, 0.5], steps=3)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"torchlean\[plot\]"):
            report.plot(str(tmp_path / "loss.png"))
        return
    report.plot(str(tmp_path / "loss.png"))
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the compiled update: one program per optimizer, the eager update's bits ----------------------
OPTIMIZERS: dict[str, Any] = {
    "adam": lambda: tl.optim.adam(0.03),
    "adam_wd_cosine": lambda: tl.optim.adam(
        tl.optim.schedules.cosine(0.03, total_steps=5, warmup_steps=2), weight_decay=0.01
    ),
    "adamw_small_beta1": lambda: tl.optim.adamw(0.03, betas=(0.3, 0.9)),  # lerp's other branch
    "sgd_momentum_step": lambda: tl.optim.sgd(tl.optim.schedules.step(0.05, 2), momentum=0.9),
    "sgd_nesterov_wd": lambda: tl.optim.sgd(0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
    "sgd_dampening": lambda: tl.optim.sgd(0.05, momentum=0.9, dampening=0.5),
    "rmsprop_centered_momentum_wd": lambda: tl.optim.rmsprop(
        0.01, momentum=0.9, centered=True, weight_decay=0.01
    ),
    "adagrad_decay_wd_init": lambda: tl.optim.adagrad(
        tl.optim.schedules.exponential(0.1, 0.9),
        lr_decay=0.01,
        weight_decay=0.01,
        initial_accumulator_value=0.1,
    ),
}
EXACT_OPTIMIZERS: dict[str, Any] = {
    "sgd_nesterov_wd": lambda: tl.optim.sgd(
        Fraction(1, 8), momentum=Fraction(1, 2), nesterov=True, weight_decay=Fraction(1, 16)
    ),
    "sgd_dampening_step": lambda: tl.optim.sgd(
        tl.optim.schedules.step(Fraction(1, 8), 1, Fraction(1, 2)),
        momentum=Fraction(1, 2),
        dampening=Fraction(1, 4),
    ),
}


def same_state(a: tl.train.Runner, b: tl.train.Runner) -> bool:
    """Parameters and optimizer state of two runners, compared bit for bit (exactly for
    `exact`, whose object arrays hold Fractions)."""

    def same(x: Any, y: Any) -> bool:
        x, y = x.numpy(), y.numpy()
        if x.dtype == object:
            return x.shape == y.shape and bool((x == y).all())
        return x.dtype == y.dtype and x.tobytes() == y.tobytes()

    sa, sb = a.opt_state, b.opt_state
    assert sa is not None and sb is not None
    return (
        same(a.flat, b.flat)
        and sa.step == sb.step
        and sa.buffers.keys() == sb.buffers.keys()
        and all(same(sa.buffers[s]["params"], sb.buffers[s]["params"]) for s in sa.buffers)
    )


@pytest.mark.parametrize("dtype", ["float", "float32", "ieee32exec"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_compiled_step_equals_eager_for_every_optimizer(name: str, dtype: str) -> None:
    """6 steps on batches of 7 of 25 (so two batch shapes): the first update and later
    ones, schedules, weight decay, momentum variants, the same bits and state."""
    kw = {"n": 6, "batch_size": 7}
    eager = fit(dtype, "eager", optimizer=OPTIMIZERS[name](), **kw)
    compiled = fit(dtype, "compiled", optimizer=OPTIMIZERS[name](), **kw)
    assert compiled._update._updates and eager._update._updates  # both ran compiled updates
    assert same_state(eager, compiled)


@pytest.mark.parametrize("name", list(EXACT_OPTIMIZERS))
def test_compiled_exact_step_equals_eager(name: str) -> None:
    eager = fit("exact", "eager", n=3, optimizer=EXACT_OPTIMIZERS[name]())
    compiled = fit("exact", "compiled", n=3, optimizer=EXACT_OPTIMIZERS[name]())
    assert all(isinstance(v, Fraction) for v in compiled.flat.numpy())
    assert same_state(eager, compiled)


@pytest.mark.parametrize("dtype", ["float32", "exact"])
def test_compiled_grads_come_flat_and_equal_eager(dtype: str) -> None:
    task = tl.train.regression(tl.nn.build(mlp(), seed=0))
    eager = tl.train.runner(task, dtype=dtype)
    compiled = tl.train.runner(task, dtype=dtype, backend="compiled")
    _, ge, _ = eager.loss_and_grads(X[:3], Y[:3])
    _, gc, _ = compiled.loss_and_grads(X[:3], Y[:3])
    assert isinstance(gc, FlatGrads) and list(gc) == list(ge) and len(gc) == len(ge)
    assert gc.flat.shape == (compiled.layout.size,)
    for k in ge:
        a, b = ge[k].numpy(), gc[k].numpy()
        assert (
            a.shape == b.shape and (a == b).all()
            if dtype == "exact"
            else (a.tobytes() == b.tobytes())
        ), k
    # grads named in a plain dict (flattened by the runner) update exactly as FlatGrads do
    other = tl.train.runner(task, dtype=dtype, backend="compiled")
    opt = tl.optim.sgd(Fraction(1, 8), momentum=Fraction(1, 2))
    compiled.set_optimizer(opt).update(gc)
    other.set_optimizer(opt).update(dict(gc))
    assert same_state(compiled, other)


def test_flat_grads_reject_a_vector_of_the_wrong_size() -> None:
    r = tl.train.runner(tl.train.regression(tl.nn.build(mlp(), seed=0)))
    with pytest.raises(ValueError, match=r"shape \(3,\) over float32 for a layout of 33"):
        FlatGrads(r.layout, tl.tensor([1.0, 2.0, 3.0], "float32"))


def test_accuracy_counts_every_position_of_sequence_outputs() -> None:
    # Logits of shape (batch=2, time=3, classes=2): 6 predictions, 5 of them right.
    logits = np.array([[[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]], [[0.0, 2.0], [0.0, 2.0], [2.0, 0.0]]])
    labels = np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    model = tl.nn.build(tl.nn.sequential(tl.nn.linear(2, 2)), seed=0)
    r = tl.train.runner(tl.train.classification(model), dtype="float")
    r.set_flat(
        r.layout.flatten({"0.weight": tl.tensor(np.eye(2)), "0.bias": tl.tensor([0.0, 0.0])})
    )
    got = tl.train.evaluate(r.task, r, [(logits, labels)])
    assert got["accuracy"] == 5 / 6
