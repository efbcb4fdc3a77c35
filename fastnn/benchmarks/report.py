"""The suite's result as text: the table ``fastnn bench`` prints and a Markdown summary."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def duration(seconds: float) -> str:
    """``0.000123`` -> ``"123 us"``: three significant figures in a readable unit."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _verdict(equivalent: bool | None) -> str:
    return "-" if equivalent is None else ("pass" if equivalent else "FAIL")


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _time_ratio(speedup: float) -> str:
    """A row's time over the numpy backend's (lower is faster), from its speedup."""
    return f"{1 / speedup:.2f}" if speedup else "-"


def rows(result: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """One line per measured row, under :data:`HEADER`."""
    lines: list[tuple[str, ...]] = []
    for row in result.get("ops", []):
        lines.append(
            (
                f"op {row['op']}",
                row["size"],
                row["backend"],
                duration(row["median_s"]),
                _time_ratio(row["speedup_vs_numpy"]),
                f"{row['max_abs_diff']:.2g}",
                f"{row['max_rel_diff']:.2g}",
                _verdict(row["equivalent"]),
                "-",
            )
        )
    for row in result.get("training", []):
        lines.append(
            (
                row["workload"],
                f"{row['samples']} samples",
                row["implementation"],
                duration(row["median_s"]),
                f"{row['vs_numpy']:.2f}",
                "-",
                _number(row["loss_rel_diff"], ".2g"),
                _verdict(row["equivalent"]),
                "-",
            )
        )
    for row in result.get("scaling", []):
        lines.append(
            (
                "train step",
                f"B={row['batch']} H={row['hidden']}",
                row["backend"],
                duration(row["median_s"]),
                _time_ratio(row["speedup_vs_numpy"]),
                "-",
                "-",
                "-",
                f"{row['gflops']:.1f}"
                + (f" ({row['vs_sgemm']:.0%} of SGEMM)" if row.get("vs_sgemm") else ""),
            )
        )
    return lines


#: the plain table's columns; every ratio in fastnn's reports is a time over another's
#: time, so below 1 is faster
HEADER = (
    "workload",
    "size",
    "backend",
    "median time",
    "time / numpy's",
    "max abs diff",
    "max rel diff",
    "matches numpy",
    "GFLOP/s",
)


def table(result: Mapping[str, Any]) -> str:
    """The rows as an aligned plain-text table, then what was skipped and why."""
    body = rows(result)
    widths = [max(len(cells[i]) for cells in [HEADER, *body]) for i in range(len(HEADER))]

    def line(cells: Iterable[str]) -> str:
        return "  ".join(
            cell.ljust(width) for cell, width in zip(cells, widths, strict=True)
        ).rstrip()

    text = [line(HEADER), line("-" * w for w in widths), *(line(cells) for cells in body)]
    text += [f"skipped {item['what']}: {item['reason']}" for item in result.get("skipped", [])]
    return "\n".join(text)


def markdown(result: Mapping[str, Any]) -> str:
    """The headline figures as Markdown: the keras epoch against peers and floor, then ops."""
    machine = result["machine"]
    where = machine.get("gpu") or f"{machine['cpu']}, {machine['cores']} cores"
    lines = [f"# fastnn benchmarks: {where}", ""]
    if "command" in result:
        lines += [f"Measured {result['date']} with `{result['command']}`.", ""]
    training = result.get("training", [])
    for workload in dict.fromkeys(row["workload"] for row in training):
        lines += [
            f"## {workload}",
            "",
            "| implementation | median time | samples/s | time / numpy backend's | "
            "time / GEMM floor's | first-epoch loss (rel. diff from numpy backend's) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for row in sorted(
            (r for r in training if r["workload"] == workload), key=lambda r: r["median_s"]
        ):
            loss = "-" if row["first_loss"] is None else f"{row['first_loss']:.4f}"
            if row["loss_rel_diff"] is not None:
                loss += f" ({row['loss_rel_diff']:.1e}, {_verdict(row['equivalent'])})"
            mark = " *" if row.get("ratios") == "of medians" else ""
            lines.append(
                f"| {row['implementation']}{mark} | {duration(row['median_s'])} | "
                f"{row['samples_per_s']:,.0f} | {row['vs_numpy']:.2f} | "
                f"{_number(row['vs_floor'], '.2f')} | {loss} |"
            )
        lines.append("")
        if any("ratios" in row for row in training):  # how they were taken, where recorded
            lines += [
                "Ratios are medians of each round's ratio, the contenders timed in turn in "
                "one process; * a peer timed in a process of its own, in rounds of its own: "
                "its ratios are of the medians.",
                "",
            ]
    if result.get("ops"):
        lines += [
            "## ops (median time per call)",
            "",
            "| op | size | backend | median time | time / numpy backend's | max rel diff "
            "| matches numpy |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in result["ops"]:
            lines.append(
                f"| {row['op']} | {row['size']} | {row['backend']} | {duration(row['median_s'])} "
                f"| {_time_ratio(row['speedup_vs_numpy'])} | {row['max_rel_diff']:.1e} "
                f"| {_verdict(row['equivalent'])} |"
            )
        lines.append("")
    if result.get("scaling"):
        lines += [
            "## scaling (one training step, 784-H-10, RMSprop)",
            "",
            "| backend | batch | hidden | time per step | GFLOP/s | SGEMM GFLOP/s "
            "| step's GFLOP/s / SGEMM's | time / numpy backend's |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in result["scaling"]:
            lines.append(
                f"| {row['backend']} | {row['batch']} | {row['hidden']} | "
                f"{duration(row['median_s'])} | {row['gflops']:.1f} | "
                f"{_number(row.get('sgemm_gflops'), '.1f')} | "
                f"{_number(row.get('vs_sgemm'), '.0%')} | {_time_ratio(row['speedup_vs_numpy'])} |"
            )
        lines.append("")
    lines += [f"Skipped {item['what']}: {item['reason']}" for item in result.get("skipped", [])]
    return "\n".join(lines).rstrip() + "\n"
