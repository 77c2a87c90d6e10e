"""`torchlean verify robustness` (torchlean.verify_cli.main) on the bands demo."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchlean.verify_cli import main


def test_demo_bands_table_and_certificates(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    assert main(["robustness", "--demo", "bands", "--eps", "1/100,1/2", "--out",
                 str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "certified accuracy at eps=1/100: 6/6" in out
    assert "certified accuracy at eps=1/2: 0/6" in out
    assert "REJECTED" not in out
    assert len(list(tmp_path.glob("cert-*.json"))) == 12


def test_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["robustness", "--model", "m.json", "--eps", "0.1"]) == 2
    assert main(["robustness", "--demo", "bands", "--eps", "abc"]) == 2
    assert "only --demo bands" in capsys.readouterr().out
