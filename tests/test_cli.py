"""The `fastnn` command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import cli, distributed
from fastnn.backends import available_backends
from fastnn.datasets import mnist


def test_backends_lists_each_with_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["backends"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[3].startswith("checks, not for speed")
    del lines[3]
    # the last line: whether MPI is there, and this process's rank among how many
    assert lines.pop() == distributed.describe()
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
    assert re.search(r"^backend \w+ \(float32\), seed 0$", out, re.M)  # given: no hint
    assert re.search(
        r"^Epoch 1/1 - .* samples/s - loss: \d\.\d{4} - accuracy: 0\.9\d{3} - "
        r"learning_rate: 0\.001$",
        out,
        re.M,
    )
    found = re.search(
        r"test accuracy: (0\.\d{4}) - test loss: .* \(\d\.\d{3}s/epoch, \d\.\d\ds setting up\)$",
        out,
        re.M,
    )
    assert found and float(found.group(1)) > 0.95


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What the command says, with usage and exit status 2, refusing ``argv`` before any
    work (nothing on stdout)."""
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: fastnn")
    return err


def test_a_data_folder_that_does_not_exist_is_refused_not_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(["train", "--data", str(tmp_path / "nowhere")], capsys)
    assert f"argument --data: must be an existing folder; received '{tmp_path / 'nowhere'}'" in err
    assert not (tmp_path / "nowhere").exists()


def test_missing_data_speaks_of_the_commands_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(mnist, "MIRRORS", ("http://127.0.0.1:9/",))  # nothing listens there
    assert cli.main(["train", "--data", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastnn: error: MNIST is not available. Searched ")
    assert f"{tmp_path} (given as --data DIR)" in err
    assert "give --data DIR or set FASTNN_DATA_DIR" in err
    assert "path=" not in err and "load_data" not in err


@pytest.mark.parametrize("route", ["option", "environment"])
def test_a_backend_that_cannot_run_is_refused_before_any_work(
    route: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = [info for info in available_backends() if not info.available]
    if not blocked:
        pytest.skip("every backend can run here")
    argv = ["train"]
    if route == "option":
        argv += ["--backend", blocked[0].name]
    else:
        monkeypatch.setenv("FASTNN_BACKEND", blocked[0].name)
    assert blocked[0].reason in _refused(argv, capsys)


def test_an_unknown_backend_or_dtype_from_the_environment_is_refused_as_an_option_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FASTNN_BACKEND", "tpu")
    assert "FASTNN_BACKEND" in _refused(["train"], capsys)
    monkeypatch.delenv("FASTNN_BACKEND")
    monkeypatch.setenv("FASTNN_DTYPE", "float16")
    assert "float16" in _refused(["train"], capsys)


def test_zero_epochs_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert "argument --epochs: must be an int >= 1; received '0'" in _refused(
        ["train", "--epochs", "0"], capsys
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastnn {fastnn.__version__} (fastnn-scratch)"


def test_without_a_seed_the_run_says_which_one_it_drew(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    received: dict[str, object] = {}

    def run(name: str, **options: object) -> None:
        received.update(options)
        raise ValueError("stopped before training")

    monkeypatch.setattr(cli.recipes, "run", run)
    assert cli.main(["train", "--backend", "numpy"]) == 1
    out = capsys.readouterr().out
    seed = received["seed"]
    assert isinstance(seed, int) and f"seed {seed} (--seed {seed} repeats this run)" in out


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
    argv = ["train", "--recipe", "deep", "--epochs", "2", "--batch-size", "64", "--seed", "3"]
    assert cli.main(argv) == 1
    assert "stopped before training" in capsys.readouterr().err
    assert received | {"name": "deep", "epochs": 2, "batch_size": 64, "seed": 3} == received


def test_python_dash_m_runs_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fastnn", "backends"], capture_output=True, text=True, check=True
    )
    assert re.match(r"numpy +available", result.stdout)


def test_the_scratch_recipe_counts_iterations_and_says_when_it_compiles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On fake images, so that it runs anywhere: the kernels reported as not yet compiled
    (a first run), the recipe says so before its first line, which counts iterations."""
    pytest.importorskip("numba")
    from fastnn.backends.numba_backend import NumbaBackend

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1300, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 1300)
    data = ((images[:1100], labels[:1100]), (images[1100:], labels[1100:]))
    monkeypatch.setattr(cli.recipes.mnist, "load_data", lambda path=None: data)
    monkeypatch.setattr(NumbaBackend, "kernels_cached", lambda self: False)
    lines: list[str] = []
    cli.recipes.run("scratch", backend="numba", epochs=10, seed=0, print_fn=lines.append)
    assert lines[0] == "compiling fastnn's Numba kernels (first run only: a few seconds)"
    assert lines[1].startswith("Iteration 10/10 - ") and len(lines) == 2


ROOT = Path(__file__).resolve().parents[1]


def test_the_distribution_is_ours_and_every_hint_installs_from_the_clone() -> None:
    """``fastnn`` on PyPI is another project: our distribution has a name of its own, the
    extras that name the project name it, and no message or page tells anyone to install
    the PyPI ``fastnn``."""
    tomllib = pytest.importorskip("tomllib")
    from fastnn.extras import DISTRIBUTION

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION != "fastnn"
    requirements = [r for extra in project["optional-dependencies"].values() for r in extra]
    ours = [r for r in requirements if re.match(r"fastnn\b", r)]
    assert ours and all(r.startswith(f"{DISTRIBUTION}[") for r in ours)
    stranger = re.compile(r"install\s+['\"]?fastnn(\[|['\"]?\s|['\"]?$)")
    sources = [*(ROOT / "fastnn").rglob("*.py"), ROOT / "README.md"]
    found = [f"{p.name}: {m.group(0)}" for p in sources for m in stranger.finditer(p.read_text())]
    assert not found
