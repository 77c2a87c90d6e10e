"""Checkpoints as PyTorch users expect them: load to evaluate, to fine-tune with another
optimizer, or to resume; the runner's state as one public value; the trained model."""

from __future__ import annotations

import ast
import json
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import torchlean as tl
from torchlean.runtime.data.dataset import TensorDataset
from torchlean.runtime.nonfinite import NonFiniteError
from torchlean.runtime.runner_state import RunnerState
from torchlean.spec import DataFormatError

GRID = np.linspace(-1, 1, 5)
X = np.array([[a, b] for a in GRID for b in GRID])
Y = X[:, :1] ** 2 + X[:, 1:] ** 2


def task(seed: int = 0) -> Any:
    net = tl.nn.sequential(tl.nn.linear(2, 8), tl.nn.relu(), tl.nn.linear(8, 1))
    return tl.train.regression(tl.nn.build(net, seed=seed))


def grid(dtype: str = "float") -> TensorDataset:
    return TensorDataset(tl.tensor(X, dtype), tl.tensor(Y, dtype))


def trained(tmp_path: Path, dtype: str = "float32", n: int = 20) -> tuple[Any, Path]:
    t = task()
    r = tl.train.runner(t, dtype=dtype)
    tl.train.fit_dataset(t, r, tl.train.steps(n, tl.optim.adam(0.03), 0, batch_size=4), grid())
    path = tmp_path / "ck.json"
    r.save(path)
    return r, path


def test_loading_for_evaluation_needs_no_optimizer(tmp_path: Path) -> None:
    r, path = trained(tmp_path)
    # a fresh task object (same description): one call, no optimizer
    fresh = tl.train.runner(task(seed=5), dtype="float32").load(path)
    assert fresh.flat.numpy().tobytes() == r.flat.numpy().tobytes()
    assert fresh.step == r.step and fresh.optimizer is None
    assert fresh.eval().predict(X).numpy().tobytes() == r.eval().predict(X).numpy().tobytes()


def test_fine_tuning_with_another_optimizer_is_one_call(tmp_path: Path) -> None:
    r, path = trained(tmp_path)
    sgd = tl.optim.sgd(0.001)
    tuned = tl.train.runner(task(), dtype="float32").load(path, optimizer=sgd)
    assert tuned.optimizer == sgd and tuned.opt_state is not None
    assert tuned.opt_state.step == 0  # a new optimizer starts from its initial state
    # and one step is exactly the SGD step from the loaded weights
    before = tuned.flat.numpy().copy()
    _, grads, _ = tuned.train().loss_and_grads(X, Y)
    tuned.update(grads)
    g = np.concatenate([np.asarray(grads[k].numpy()).reshape(-1) for k in tuned.params])
    expected = (before - np.float32(0.001) * g.astype(np.float32)).astype(np.float32)
    assert tuned.flat.numpy().tobytes() == expected.tobytes()


def test_fine_tuning_through_fit_dataset_with_a_new_rate(tmp_path: Path) -> None:
    _, path = trained(tmp_path)
    t = task()
    r = tl.train.runner(t, dtype="float32").load(path)
    report = tl.train.fit_dataset(t, r, tl.train.steps(5, tl.optim.adam(0.001), 0), grid())
    assert r.opt_state is not None and r.opt_state.step == 5  # fresh Adam state: 5 updates
    assert np.isfinite(report.loss_after)


def test_resume_without_setting_the_optimizer_first_is_bit_identical(tmp_path: Path) -> None:
    opt = tl.optim.adam(0.03)
    t = task()
    whole = tl.train.runner(t, dtype="ieee32exec")
    tl.train.fit_dataset(t, whole, tl.train.steps(30, opt, 0, batch_size=4), grid())
    first = tl.train.runner(t, dtype="ieee32exec")
    tl.train.fit_dataset(t, first, tl.train.steps(12, opt, 0, batch_size=4), grid())
    first.save(tmp_path / "ck.json")
    # load first, optimizer later (as PyTorch's load_state_dict then optimizer set-up)
    resumed = tl.train.runner(task(), dtype="ieee32exec").load(tmp_path / "ck.json")
    tl.train.fit_dataset(t, resumed, tl.train.steps(18, opt, 0, batch_size=4), grid())
    assert resumed.flat.numpy().tobytes() == whole.flat.numpy().tobytes()
    # stating the same optimizer in load resumes too
    again = tl.train.runner(t, dtype="ieee32exec").load(tmp_path / "ck.json", optimizer=opt)
    tl.train.fit_dataset(t, again, tl.train.steps(18, opt, 0, batch_size=4), grid())
    assert again.flat.numpy().tobytes() == whole.flat.numpy().tobytes()


def test_a_weights_only_checkpoint_loads_and_trains(tmp_path: Path) -> None:
    r, _ = trained(tmp_path)
    r.save(tmp_path / "weights.json", optimizer=False)
    assert json.loads((tmp_path / "weights.json").read_text())["optimizer"] is None
    back = tl.train.runner(task(), dtype="float32").load(tmp_path / "weights.json",
                                                          optimizer=tl.optim.adam(0.03))
    assert back.opt_state is not None and back.opt_state.step == 0
    assert back.flat.numpy().tobytes() == r.flat.numpy().tobytes()


def test_trained_model_is_the_runners_model_with_its_weights(tmp_path: Path) -> None:
    r, _ = trained(tmp_path)
    model = r.trained_model()
    assert model.field.name == "float32"
    assert model(tl.tensor(X, "float32")).numpy().tobytes() == (
        r.eval().predict(X).numpy().tobytes())
    saved = {k: t.numpy().copy() for k, t in model.params.items()}
    r.train_step(X, Y)  # later training does not show through
    assert all((model.params[k].numpy() == v).all() for k, v in saved.items())
    # and it converts for exact evaluation, each weight keeping its exact value
    exact = model.to("exact").params["0.weight"].numpy()
    assert exact[0, 0] == Fraction(float(saved["0.weight"][0, 0]))


def test_state_is_one_frozen_value_and_set_state_round_trips(tmp_path: Path) -> None:
    r, _ = trained(tmp_path)
    state = r.state()
    assert isinstance(state, RunnerState)
    with pytest.raises(AttributeError):
        state.step = 3  # type: ignore[misc]
    other = tl.train.runner(task(), dtype="float32").set_optimizer(tl.optim.adam(0.03))
    other.set_state(state)
    assert other.flat.numpy().tobytes() == r.flat.numpy().tobytes()
    assert other.opt_state is not None and r.opt_state is not None
    assert other.opt_state.step == r.opt_state.step == r.step
    wrong = tl.train.runner(tl.train.regression(tl.nn.build(
        tl.nn.sequential(tl.nn.linear(2, 1)), seed=0)), dtype="float32")
    with pytest.raises(DataFormatError, match="different model"):
        wrong.set_state(state)


def test_checkpoint_module_does_not_reach_into_runners() -> None:
    import torchlean.runtime.checkpoint as ck

    tree = ast.parse(Path(ck.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "runner" not in imported and not any(m and m.endswith(".runner") for m in imported)
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not attributes & {"set_flat", "set_buffers", "opt_state", "layout", "flat"}


def test_another_optimizers_state_is_not_adopted(tmp_path: Path) -> None:
    _, path = trained(tmp_path)
    r = tl.train.runner(task(), dtype="float32").set_optimizer(tl.optim.adam(0.5))
    r.load(path)  # the runner's own optimizer differs from the saved adam(0.03)
    assert r.opt_state is not None and r.opt_state.step == 0


def test_a_nonfinite_state_is_not_saved_over_a_good_checkpoint(tmp_path: Path) -> None:
    r, path = trained(tmp_path)
    good = path.read_bytes()
    flat = r.flat.numpy().copy()
    flat[3] = np.nan
    r.set_flat(tl.tensor(flat, "float32"))
    with pytest.raises(NonFiniteError, match=r"params\.0\.weight holds NaN"):
        r.save(path)
    assert path.read_bytes() == good
    r.save(tmp_path / "debug.json", allow_nonfinite=True)  # on request it is written
    back = tl.train.runner(task(), dtype="float32").load(tmp_path / "debug.json")
    assert np.isnan(back.flat.numpy()[3])


def test_unknown_field_in_a_checkpoint_is_a_format_error(tmp_path: Path) -> None:
    _, path = trained(tmp_path)
    doc = json.loads(path.read_text())
    doc["field"] = "float16"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match="field.*float16"):
        tl.train.runner(task(), dtype="float32").load(path)


def test_the_checkpoints_page_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every python block of docs/checkpoints.md runs, in order, in one namespace."""
    page = Path(__file__).resolve().parents[2] / "docs" / "checkpoints.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs.checkpoints"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"checkpoints.md[block {i}]", "exec"), namespace)  # noqa: S102
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt.json", "weights.ckpt.json"]


def test_readme_and_guide_link_the_checkpoints_page() -> None:
    root = Path(__file__).resolve().parents[2]
    assert "docs/checkpoints.md" in (root / "README.md").read_text()
    assert "checkpoints.md" in (root / "docs/guide/training-from-scratch.md").read_text()


def test_a_damaged_optimizer_section_changes_nothing(tmp_path: Path) -> None:
    _, path = trained(tmp_path)
    doc = json.loads(path.read_text())
    doc["optimizer"]["buffers"]["exp_avg"]["params"]["shape"] = [3]
    doc["optimizer"]["buffers"]["exp_avg"]["params"]["data"] = ["0x0p+0"] * 3
    path.write_text(json.dumps(doc))
    r = tl.train.runner(task(), dtype="float32")
    before = r.flat.numpy().copy()
    with pytest.raises(DataFormatError, match=r"ck\.json: optimizer\.exp_avg\.params.*shape"):
        r.load(path, optimizer=tl.optim.adam(0.03))
    assert r.optimizer is None and r.step == 0 and (r.flat.numpy() == before).all()
