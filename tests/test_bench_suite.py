"""The benchmark suite: its equivalence checks, its rows, its reports and ``fastnn bench``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fastnn import cli
from fastnn.backends import available_backends
from fastnn.benchmarks import report, suite, workloads
from fastnn.benchmarks.timing import Timing, interleaved
from tests.conftest import backend_params

#: small sizes of every op, so each backend's result can be checked in milliseconds
SMALL = {op: (5, 7, 3) if op == "matmul" else (6, 4) for op in workloads.OP_SIZES}
RUNNABLE = [info.name for info in available_backends() if info.available]


# ------------------------------------------------------------- equivalence
def test_interleaved_rounds_turn_the_order() -> None:
    calls: list[str] = []
    work = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    timings = interleaved(work, rounds=4)
    assert calls == list("abc" + "abc" + "bca" + "cab" + "abc")  # first calls, then rounds
    assert all(len(timing.runs) == 4 for timing in timings.values())


def test_differences_accepts_identical_and_rounding_level_results() -> None:
    want = [np.array([[1.0, -2.0], [3.0, 4.0]], np.float32)]
    assert workloads.differences(want, want) == (0.0, 0.0, True)
    nudged = [want[0] + np.float32(1e-6)]
    max_abs, max_rel, same = workloads.differences(nudged, want)
    assert same and max_abs == pytest.approx(1e-6, rel=0.1)  # float32 spacing near 4
    assert max_rel == pytest.approx(max_abs / 4.0)


@pytest.mark.parametrize(
    "got",
    [
        [np.array([[1.0, -2.0], [3.0, 4.01]], np.float32)],  # beyond the tolerance
        [np.array([[1.0, -2.0], [3.0, np.nan]], np.float32)],  # NaN never passes
        [np.array([1.0, -2.0, 3.0, 4.0], np.float32)],  # wrong shape
    ],
    ids=["off", "nan", "shape"],
)
def test_differences_rejects_wrong_results(got: list[np.ndarray]) -> None:
    want = [np.array([[1.0, -2.0], [3.0, 4.0]], np.float32)]
    assert workloads.differences(got, want)[2] is False


@pytest.mark.parametrize("op", list(workloads.OP_SIZES))
@pytest.mark.parametrize("name", backend_params())
def test_every_op_workload_matches_numpy(name: str, op: str) -> None:
    reference = workloads.on_host("numpy", workloads.op_workload("numpy", op, SMALL[op])())
    got = workloads.on_host(name, workloads.op_workload(name, op, SMALL[op])())
    assert workloads.differences(got, reference)[2]
    assert all(np.all(np.isfinite(part)) for part in reference)


def test_unknown_op_is_named() -> None:
    with pytest.raises(ValueError, match="unknown op 'gelu'"):
        workloads.op_workload("numpy", "gelu", (2, 2))


def test_step_flops_counts_the_five_matrix_products() -> None:
    # x@W1 (2*B*784*H), h@W2 (2*B*H*10), h.T@dz (2*H*B*10), dz@W2.T (2*B*10*H), x.T@dh
    batch, hidden = 128, 512
    expected = 2 * batch * 784 * hidden * 2 + 3 * 2 * batch * hidden * 10
    assert workloads.step_flops(batch, hidden) == expected


# --------------------------------------------------------------- the suite
def test_op_rows_time_every_backend_and_check_it() -> None:
    options = suite.Options(
        backends=RUNNABLE[1:], ops=["relu", "adam_update"], sizes="real", sections=["ops"],
        quick=True, rounds=2,
    )  # fmt: skip
    result = suite.run(options)
    rows = result["ops"]
    assert options.backends[0] == "numpy"  # added: every figure is relative to it
    assert {(r["op"], r["backend"]) for r in rows} == {
        (op, name) for op in ("relu", "adam_update") for name in RUNNABLE
    }
    for row in rows:
        assert row["equivalent"] is True
        assert row["median_s"] > 0 and row["first_s"] > 0
        assert row["size"] == workloads.size_label(workloads.OP_SIZES[row["op"]][0])
        if row["backend"] == "numpy":
            assert row["speedup_vs_numpy"] == 1.0
    assert result["training"] == [] and result["scaling"] == []
    assert result["machine"]["cores"] >= 1


def test_scaling_rows_report_gflops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workloads, "SCALING_BATCHES", (16, 64))
    monkeypatch.setattr(workloads, "SCALING_HIDDEN", (8, 32))
    options = suite.Options(backends=RUNNABLE, sections=["scaling"], rounds=1)
    rows = suite.run(options)["scaling"]
    points = {(r["sweep"], r["batch"], r["hidden"]) for r in rows}
    assert points == {("batch", 16, 512), ("batch", 64, 512), ("hidden", 128, 8),
                      ("hidden", 128, 32)}  # fmt: skip
    for row in rows:
        flops = workloads.step_flops(row["batch"], row["hidden"])
        assert row["gflops"] == pytest.approx(flops / row["median_s"] / 1e9)


@pytest.mark.slow
def test_training_rows_put_backends_peers_and_floor_side_by_side(
    mnist: Any,
) -> None:
    options = suite.Options(backends=RUNNABLE, sections=["training"], quick=True, rounds=1)
    rows = suite.run(options)["training"]
    keras = {r["implementation"]: r for r in rows if r["workload"] == "keras epoch"}
    assert {f"fastnn {name}" for name in RUNNABLE} | {"gemm floor"} <= set(keras)
    assert "numpy (tutorial style)" in keras  # the one peer that needs nothing installed
    assert keras["gemm floor"]["vs_floor"] == 1.0
    assert keras["fastnn numpy"]["vs_numpy"] == 1.0
    for row in rows:
        if row["kind"] == "backend":  # every backend learns what numpy learns
            assert row["equivalent"] is True, row
    assert any(r["workload"].startswith("scratch") for r in rows)


# ----------------------------------------------------------------- reports
def _result() -> dict[str, Any]:
    return {
        "date": "2026-11-23T00:00:00+00:00",
        "machine": {"cpu": "Test CPU", "cores": 2, "gpu": None},
        "ops": [
            {"op": "relu", "size": "128x512", "backend": "numpy", "median_s": 2e-4,
             "first_s": 3e-4, "speedup_vs_numpy": 1.0, "max_abs_diff": 0.0,
             "max_rel_diff": 0.0, "equivalent": True},
            {"op": "relu", "size": "128x512", "backend": "numba", "median_s": 5e-5,
             "first_s": 0.5, "speedup_vs_numpy": 4.0, "max_abs_diff": 0.5,
             "max_rel_diff": 0.1, "equivalent": False},
        ],
        "training": [
            {"workload": "keras epoch", "implementation": "fastnn numpy", "kind": "backend",
             "samples": 60000, "median_s": 1.3, "first_s": 1.5, "samples_per_s": 46000.0,
             "final_loss": 0.1, "first_loss": 0.25, "vs_numpy": 1.0, "vs_floor": 2.7,
             "loss_rel_diff": 0.0, "equivalent": True},
            {"workload": "keras epoch", "implementation": "gemm floor", "kind": "floor",
             "samples": 60000, "median_s": 0.48, "first_s": 0.5, "samples_per_s": 125000.0,
             "final_loss": None, "first_loss": None, "vs_numpy": 0.37, "vs_floor": 1.0,
             "loss_rel_diff": None, "equivalent": None},
        ],
        "scaling": [
            {"backend": "numpy", "sweep": "batch", "batch": 32, "hidden": 512,
             "median_s": 1e-3, "first_s": 1e-3, "gflops": 1.6, "speedup_vs_numpy": 1.0},
        ],
        "skipped": [{"what": "pytorch cpu", "reason": "PyTorch is not installed"}],
    }  # fmt: skip


def test_table_shows_every_row_its_verdict_and_what_was_skipped() -> None:
    text = report.table(_result())
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["workload", "size", "backend"]
    assert len(lines) == 2 + 2 + 2 + 1 + 1  # header, rule, ops, training, scaling, skipped
    relu_numba = next(line for line in lines if "op relu" in line and "numba" in line)
    # a time ratio, as every ratio of the reports: a quarter of numpy's time
    assert "FAIL" in relu_numba and " 0.25 " in relu_numba and "50 us" in relu_numba
    assert relu_numba.split()[6] == "0.25"  # the time / numpy column: no "x" speedups
    assert "skipped pytorch cpu: PyTorch is not installed" in text
    assert lines[0].split("  ")[-1].strip() == "GFLOP/s" and lines[-2].endswith(" 1.6")


def test_markdown_sorts_training_fastest_first_and_lists_ops() -> None:
    text = report.markdown(_result())
    assert text.startswith("# fastnn benchmarks: Test CPU, 2 cores")
    assert text.index("| gemm floor |") < text.index("| fastnn numpy |")
    assert "| relu | 128x512 | numba | 50 us | 0.25 | 1.0e-01 | FAIL |" in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(2.5, "2.5 s"), (0.0123, "12.3 ms"), (4.56e-5, "45.6 us"), (3e-9, "3 ns")],
)
def test_duration_picks_a_readable_unit(seconds: float, text: str) -> None:
    assert report.duration(seconds) == text


# ------------------------------------------------------------ fastnn bench
def test_bench_command_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "result.json"
    argv = ["bench", "--quick", "--sections", "ops", "--ops", "softmax,sgd_update",
            "--rounds", "1", "--json", str(out)]  # fmt: skip
    assert cli.main(argv) == 0
    printed = capsys.readouterr()
    assert "op softmax" in printed.out and "op sgd_update" in printed.out
    assert "... op softmax 128x10" in printed.err  # progress goes to stderr
    result = json.loads(out.read_text())
    assert result["command"] == "fastnn " + " ".join(argv)
    assert len(result["ops"]) == 2 * len(RUNNABLE)
    assert {"cpu", "cores", "gpu", "numpy"} <= set(result["machine"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ops", "relu,gelu"], "unknown ['gelu']; choose from matmul"),
        (["--sections", "speed"], "unknown ['speed']; choose from ops, training, scaling"),
        (["--sizes", "huge"], "invalid choice: 'huge'"),
        (["--backend", "tpu"], "invalid choice: 'tpu'"),
        (["--rounds", "0"], "argument --rounds: must be an int >= 1; received '0'"),
    ],
)
def test_bench_rejects_bad_arguments_by_name(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("name", [i.name for i in available_backends() if not i.available])
def test_bench_on_a_backend_that_cannot_run_says_why(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", "--backend", name, "--quick"]) == 1
    assert name in capsys.readouterr().err


def test_bench_plot_without_matplotlib_fails_before_timing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name)
    )
    assert cli.main(["bench", "--quick", "--plot", "charts"]) == 1
    assert 'pip install -e ".[plot]" in the fastnn folder' in capsys.readouterr().err


def test_peers_timed_in_rounds_of_their_own_get_ratios_of_medians() -> None:
    """A peer in a process of its own was not timed in fastnn's rounds: pairing its runs
    with fastnn's round by round would be a ratio of unrelated pairs."""

    def clock(values: list[float]) -> Any:
        times = iter(values)
        return lambda: next(times)  # a workload that reports its own seconds

    entries = {
        "fastnn numpy": suite._Entry("backend", clock([9.0, 1.0, 4.0, 2.0]), backend="numpy"),
        "in-process peer": suite._Entry("peer", clock([9.0, 2.0, 2.0, 8.0])),
        "peer apart": suite._Entry("peer", None, Timing(first=9.0, runs=[3.0, 6.0, 9.0])),
    }
    options = suite.Options(backends=["numpy"], rounds=3)
    rows = {r["implementation"]: r for r in suite._time_entries("w", 10, entries, options)}
    paired = rows["in-process peer"]
    assert paired["ratios"] == "per round" and paired["vs_numpy"] == 2.0  # median(2, .5, 4)
    apart = rows["peer apart"]
    assert apart["ratios"] == "of medians" and apart["vs_numpy"] == 6.0 / 2.0
    text = report.markdown({"date": "d", "machine": {"cpu": "c", "cores": 2}, "training": [
        {**apart, "first_loss": None, "loss_rel_diff": None}
    ]})  # fmt: skip
    assert "| peer apart * |" in text and "its ratios are of the medians" in text
