"""The `fastnn` command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastnn import cli
from fastnn.backends import available_backends
from fastnn.datasets import mnist


def test_backends_lists_each_with_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["backends"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[3].startswith("checks, not for speed")
    del lines[3]
    assert [line.split()[0] for line in lines] == ["numpy", "numba", "cupy", "cupy-emulated"]
    for info, line in zip(available_backends(emulated=True), lines, strict=True):
        assert ("unavailable: " + info.reason if not info.available else "available") in line


@pytest.mark.slow
def test_train_prints_progress_and_test_accuracy(
    capsys: pytest.CaptureFixture[str], mnist: object
) -> None:
    """``mnist``: the command reads the same data, so this skips where it is missing."""
    assert cli.main(["train", "--recipe", "keras", "--epochs", "1", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("recipe keras: 784-512-10")
    assert re.search(
        r"^Epoch 1/1 - .* samples/s - loss: \d\.\d{4} - accuracy: 0\.9\d{3} - "
        r"learning_rate: 0\.001$",
        out,
        re.M,
    )
    found = re.search(
        r"test accuracy: (0\.\d{4}) - test loss: .* - backend: (\w+) \(float32\)", out
    )
    assert found and float(found.group(1)) > 0.95


def test_missing_data_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(mnist, "MIRRORS", ("http://127.0.0.1:9/",))  # nothing listens there
    assert cli.main(["train", "--data", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastnn: error: ")
    assert str(tmp_path / "nowhere") in err and "FASTNN_DATA_DIR" in err


def test_unrunnable_backend_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    blocked = [info for info in available_backends() if not info.available]
    if not blocked:
        pytest.skip("every backend can run here")
    assert cli.main(["train", "--backend", blocked[0].name]) == 1
    assert blocked[0].reason in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["train", "--recipe", "resnet"])
    assert caught.value.code == 2
    assert "invalid choice: 'resnet'" in capsys.readouterr().err


def test_train_overrides_reach_the_recipe(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    received: dict[str, object] = {}

    def run(name: str, **options: object) -> None:
        received.update(options, name=name)
        raise ValueError("stopped before training")

    monkeypatch.setattr(cli.recipes, "run", run)
    argv = ["train", "--recipe", "deep", "--epochs", "0", "--batch-size", "64", "--seed", "3"]
    assert cli.main(argv) == 1
    assert "stopped before training" in capsys.readouterr().err
    assert received | {"name": "deep", "epochs": 0, "batch_size": 64, "seed": 3} == received


def test_python_dash_m_runs_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fastnn", "backends"], capture_output=True, text=True, check=True
    )
    assert re.match(r"numpy +available", result.stdout)
