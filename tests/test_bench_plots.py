"""The benchmark charts: which PNGs are written, their size, and the missing extra."""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import pytest

from fastnn.benchmarks import plots

CHARTS = ["op_times.png", "scaling.png", "training.png"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: (op, size, numba speedup, cupy speedup): the ops a `--sizes real` run times
OPS = [
    ("matmul", "128x784x512", 0.9, 6.5),
    ("relu", "128x512", 3.1, 1.4),
    ("bias_relu", "128x512", 4.8, 1.9),
    ("softmax", "128x10", 6.0, 0.2),
    ("softmax_cross_entropy", "128x10", 7.4, 0.3),
    ("adam_update", "784x512", 11.0, 38.0),
]


def _ops() -> list[dict[str, Any]]:
    rows = []
    for op, size, *speedups in OPS:
        for backend, speedup in zip(("numpy", "numba", "cupy"), (1.0, *speedups), strict=True):
            rows.append(
                {
                    "op": op,
                    "size": size,
                    "backend": backend,
                    "median_s": 2e-4 / speedup,
                    "first_s": 0.8,
                    "speedup_vs_numpy": speedup,
                    "max_abs_diff": 1e-7,
                    "max_rel_diff": 2e-7,
                    "equivalent": True,
                }
            )
    rows[-1].update(max_abs_diff=0.3, max_rel_diff=0.1, equivalent=False)  # cupy adam
    return rows


def _scaling() -> list[dict[str, Any]]:
    rows = []
    points = [("batch", b, 512) for b in (32, 128, 512, 2048, 8192)]
    points += [("hidden", 128, h) for h in (64, 256, 1024, 4096)]
    for backend, gflops in (("numpy", 20.0), ("numba", 45.0)):
        for sweep, batch, hidden in points:
            flops = 2.0 * batch * (2 * 784 * hidden + 3 * hidden * 10)
            achieved = gflops * min(1.0, batch * hidden / 65_536)  # small steps reach less
            rows.append(
                {
                    "backend": backend,
                    "sweep": sweep,
                    "batch": batch,
                    "hidden": hidden,
                    "median_s": flops / achieved / 1e9,
                    "gflops": achieved,
                }
            )
    return rows


def _training() -> list[dict[str, Any]]:
    keras = [  # (implementation, kind, seconds per epoch)
        ("fastnn numpy", "backend", 1.27),
        ("fastnn numba", "backend", 0.70),
        ("gemm floor", "floor", 0.476),
        ("pytorch cpu", "peer", 0.93),
        ("keras 3 (jax)", "peer", 2.4),
    ]
    rows = [
        {
            "workload": "keras epoch",
            "implementation": name,
            "kind": kind,
            "samples": 60_000,
            "median_s": seconds,
            "first_s": seconds * 2,
            "samples_per_s": 60_000 / seconds,
            "final_loss": None if kind == "floor" else 0.07,
            "vs_numpy": seconds / 1.27,
            "vs_floor": seconds / 0.476,
        }
        for name, kind, seconds in keras
    ]
    scratch = {**rows[0], "workload": "scratch 20 iterations", "samples": 1_200_000}
    return [*rows, scratch]  # another workload, which no chart shows


@pytest.fixture
def result() -> dict[str, Any]:
    """What ``fastnn bench --json`` writes, on a CPU machine with a GPU."""
    return {
        "command": "fastnn bench",
        "date": "2026-11-23T10:00:00+00:00",
        "machine": {"cpu": "Intel Xeon Platinum 8481C", "cores": 2, "gpu": "NVIDIA H100"},
        "ops": _ops(),
        "training": _training(),
        "scaling": _scaling(),
        "skipped": [{"what": "pytorch cuda", "reason": "PyTorch has no CUDA device"}],
    }


@pytest.fixture
def matplotlib() -> Any:
    """matplotlib, or skip: the charts need the [plot] extra."""
    return pytest.importorskip("matplotlib")


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE and header[12:16] == b"IHDR"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_writes_every_chart_as_a_png_of_the_set_size(
    matplotlib: Any, result: dict[str, Any], tmp_path: Path
) -> None:
    from matplotlib.image import imread

    out = tmp_path / "new" / "charts"  # created on the way
    written = plots.write_plots(result, out)
    assert written == [out / name for name in CHARTS]
    for path in written:
        assert _png_size(path) == (1080, 600)  # 9 x 5 inches at 120 dpi
        pixels = imread(path)
        colours = {tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::97]}
        assert len(colours) > 20, f"{path.name} is nearly blank"


def test_a_result_that_differs_from_numpy_is_marked(
    matplotlib: Any, result: dict[str, Any], tmp_path: Path
) -> None:
    from matplotlib.image import imread

    marked = plots.write_plots(result, tmp_path / "marked")[0]
    for row in result["ops"]:
        row["equivalent"] = True
    clean = plots.write_plots(result, tmp_path / "clean")[0]
    assert (imread(marked) != imread(clean)).any()


@pytest.mark.parametrize("empty", ["ops", "scaling", "training"])
def test_an_empty_section_writes_no_chart(
    matplotlib: Any, result: dict[str, Any], tmp_path: Path, empty: str
) -> None:
    result[empty] = []
    written = plots.write_plots(result, tmp_path)
    gone = {"ops": "op_times.png", "scaling": "scaling.png", "training": "training.png"}
    assert [path.name for path in written] == [name for name in CHARTS if name != gone[empty]]
    assert sorted(path.name for path in tmp_path.iterdir()) == [p.name for p in written]


def test_rows_with_nothing_to_chart_write_no_chart(
    matplotlib: Any, result: dict[str, Any], tmp_path: Path
) -> None:
    result["ops"] = [row for row in result["ops"] if row["backend"] == "numpy"]  # all 1x
    result["training"] = [r for r in result["training"] if r["workload"] != "keras epoch"]
    assert plots.write_plots(result, tmp_path / "a") == [tmp_path / "a" / "scaling.png"]
    assert plots.write_plots({"machine": {}}, tmp_path / "b") == []
    assert (tmp_path / "b").is_dir()


def test_without_matplotlib_it_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, result: dict[str, Any], tmp_path: Path
) -> None:
    # None in sys.modules makes `import` fail; cover submodules another test imported
    for name in [name for name in sys.modules if name.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[plot\]"') as error:
        plots.write_plots(result, tmp_path)
    assert "\n" not in str(error.value)
    assert not list(tmp_path.iterdir())
