"""The suite's result as PNG charts (needs the ``[plot]`` extra: matplotlib).

``write_plots`` draws each chart on a figure of ``fastnn.plots.agg_figure``: no display,
no pyplot state.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastnn.plots import agg_figure

if TYPE_CHECKING:  # matplotlib is optional and untyped to mypy: these are ``Any`` there
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

Row = Mapping[str, Any]

SIZE_IN = (9.0, 5.0)
DPI = 120
#: keras-workload bar colours by row kind, and what the legend calls each kind
KINDS = {
    "backend": ("tab:blue", "fastnn backend"),
    "peer": ("tab:gray", "peer library"),
    "floor": ("tab:green", "GEMM floor (matrix products only)"),
}
#: the scaling sweeps: what each varies, and its unit
SWEEPS = {"batch": ("batch size", "rows"), "hidden": ("hidden width", "units")}
NOT_EQUIVALENT = "tab:red"
DIFFERS = "result differs from numpy"


def write_plots(result: Mapping[str, Any], directory: str | Path) -> list[Path]:
    """Write the benchmark charts for ``result`` as PNG files in ``directory``; return their paths.

    A chart whose section is empty or absent is not written.
    """
    charts: dict[str, tuple[Sequence[Row], Callable[[Figure, Sequence[Row]], str]]] = {
        "op_times.png": (_not_numpy(result.get("ops", [])), _op_times),
        "scaling.png": (result.get("scaling", []), _scaling),
        "training.png": (_keras_rows(result.get("training", [])), _training),
    }
    out = Path(directory)
    written = []
    for name, (rows, draw) in charts.items():
        if not rows:
            continue
        with agg_figure(out / name, SIZE_IN, DPI) as figure:
            what = draw(figure, rows)
            figure.suptitle(f"{what}\n{_machine(result)}", fontsize=12)
        written.append(out / name)
    out.mkdir(parents=True, exist_ok=True)  # also when no chart had anything to draw
    return written


# ------------------------------------------------------------------ helpers
def _machine(result: Mapping[str, Any]) -> str:
    """``"on Intel Xeon ... (2 cores) + NVIDIA H100"``: where the figures were measured."""
    machine = result.get("machine", {})
    where = f"on {machine.get('cpu') or 'unknown CPU'}"
    if machine.get("cores"):
        where += f" ({machine['cores']} cores)"
    if machine.get("gpu"):
        where += f" + {machine['gpu']}"
    return where


def _unique(values: Sequence[Any]) -> list[Any]:
    """``values`` without repeats, in order of first appearance."""
    return list(dict.fromkeys(values))


def _backend_colours(backends: Sequence[str]) -> dict[str, str]:
    """One fixed colour per backend, numpy first, so each chart matches the others."""
    order = _unique(["numpy", "numba", "cupy", *backends])
    return {name: f"C{i % 10}" for i, name in enumerate(order)}


def _ratio_axis(axis: Axis) -> None:
    """Tick labels as ``"0.5"``, ``"2"``: the axis is a ratio of times, plainly written."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def _plain_ticks(axis: Axis, values: Sequence[float]) -> None:
    """Ticks exactly at the measured ``values``, written plainly (``512``, not ``2^9``)."""
    from matplotlib.ticker import NullLocator

    axis.set_ticks(values, labels=[f"{value:g}" for value in values])
    axis.set_minor_locator(NullLocator())


def _plain_log(axis: Axis) -> None:
    """A log axis labelled ``6``, ``40``, ``0.5`` rather than ``6 x 10^0``."""
    from matplotlib.ticker import LogFormatter

    axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False))


# ------------------------------------------------------------------- charts
def _op_times(figure: Figure, rows: Sequence[Row]) -> str:
    """Grouped bars of each op's time over numpy's (as every ratio in fastnn's reports: below
    1 is faster): a panel per op, a group per size, a bar per backend."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    groups = _unique([(row["op"], row["size"]) for row in rows])
    ops = _unique([op for op, _ in groups])
    backends = _unique([row["backend"] for row in rows])
    colours = _backend_colours(backends)
    # the legend and x label go on a subfigure: constrained layout stacks a figure's own
    # suptitle, supxlabel and outside legend on top of each other
    body = figure.subfigures(squeeze=False)[0, 0]  # one subfigure, as one type to mypy
    # a panel per op, as wide as its sizes are many, keeps each op's name readable
    panels = body.subplots(
        1,
        len(ops),
        sharey=True,
        squeeze=False,
        gridspec_kw={"width_ratios": [sum(op == o for o, _ in groups) for op in ops]},
    )[0]
    crowded = len(groups) > 8  # then bar and tick labels turn upright to fit
    for ax, op in zip(panels, ops, strict=True):
        mine = [row for row in rows if row["op"] == op]
        _op_panel(ax, mine, backends, colours, crowded)
        # long names wrap after an underscore: "softmax_" over "cross_entropy"
        ax.set_title(textwrap.fill(op.replace("_", "_ "), 14).replace("_ ", "_"), fontsize=9)
    ratios = [1 / row["speedup_vs_numpy"] for row in rows]
    low, high = min([*ratios, 1.0]), max([*ratios, 1.0])
    if high / low > 20:  # a linear axis would flatten the small ones
        panels[0].set_yscale("log")
    else:
        panels[0].set_ylim(bottom=0)  # not below: no time is negative
    _ratio_axis(panels[0].yaxis)
    panels[0].set_ylabel("time / numpy backend's (below 1: faster)")
    body.supxlabel("array shape (matmul: m x k x n)", fontsize=10)
    handles: list[Artist] = [Patch(color=colours[b], label=b) for b in backends]
    handles.append(Line2D([], [], color="black", linestyle="--", label="numpy (1)"))
    if any(row.get("equivalent") is False for row in rows):
        handles.append(
            Patch(facecolor="white", edgecolor=NOT_EQUIVALENT, hatch="///", label=DIFFERS)
        )
    body.legend(handles=handles, loc="outside upper center", ncols=len(handles), fontsize=9)
    return "Each op's time over the numpy backend's"


def _not_numpy(rows: Sequence[Row]) -> list[Row]:
    """The op rows of every backend but numpy, whose ratio is 1 by definition."""
    return [row for row in rows if row["backend"] != "numpy"]


def _op_panel(
    ax: Axes, rows: Sequence[Row], backends: Sequence[str], colours: dict[str, str], crowded: bool
) -> None:
    """One op's bars, from the line at 1: down is faster than numpy, up is slower."""
    sizes = _unique([row["size"] for row in rows])
    width = 0.8 / max(len(backends), 1)
    for i, backend in enumerate(backends):
        mine = [row for row in rows if row["backend"] == backend]
        x = [sizes.index(row["size"]) - 0.4 + width * (i + 0.5) for row in mine]
        ratios = [1 / row["speedup_vs_numpy"] for row in mine]
        bars = ax.bar(x, [r - 1 for r in ratios], width, bottom=1, color=colours[backend])
        texts = ax.bar_label(
            bars,
            labels=[f"{r:.2g}" for r in ratios],
            fontsize=7,
            padding=2,
            rotation=90 if crowded else 0,
        )
        for bar, text, row in zip(bars, texts, mine, strict=True):
            if row.get("equivalent") is False:
                bar.set(hatch="///", edgecolor=NOT_EQUIVALENT, linewidth=1.5)
                text.set(color=NOT_EQUIVALENT, fontweight="bold")
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(sizes)), sizes, fontsize=7, rotation=90 if crowded else 0)
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.margins(y=0.2)  # room for the value labels above the tallest bar
    ax.grid(axis="y", alpha=0.3)


def _scaling(figure: Figure, rows: Sequence[Row]) -> str:
    """Time per step (top) and GFLOP/s (bottom) against batch size and hidden width."""
    sweeps = [sweep for sweep in SWEEPS if _sweep(rows, sweep)]
    axes = figure.subplots(2, len(sweeps), sharex="col", squeeze=False)
    colours = _backend_colours([row["backend"] for row in rows])
    for column, sweep in enumerate(sweeps):
        points = _sweep(rows, sweep)
        time_ax, flops_ax = axes[0][column], axes[1][column]
        for backend in _unique([row["backend"] for row in points]):
            mine = sorted((r for r in points if r["backend"] == backend), key=lambda r: r[sweep])
            x = [row[sweep] for row in mine]
            style = {"color": colours[backend], "marker": "o", "label": backend}
            time_ax.plot(x, [row["median_s"] * 1e3 for row in mine], **style)
            flops_ax.plot(x, [row["gflops"] for row in mine], **style)
        name, unit = SWEEPS[sweep]
        fixed = next(other for other in SWEEPS if other != sweep)
        time_ax.set_title(f"against {name}, at {SWEEPS[fixed][0]} {points[0][fixed]}", fontsize=10)
        for ax in (time_ax, flops_ax):
            ax.set(xscale="log", yscale="log")
            _plain_log(ax.yaxis)
            ax.grid(which="both", alpha=0.3)
        _plain_ticks(flops_ax.xaxis, sorted({row[sweep] for row in points}))
        flops_ax.set_xlabel(f"{name} ({unit})")
    axes[0][0].set_ylabel("time per step (ms)")
    axes[1][0].set_ylabel("GFLOP/s")
    axes[0][0].legend(title="backend", fontsize=9)
    return "One training step of a 784-H-10 network: time and throughput"


def _sweep(rows: Sequence[Row], sweep: str) -> list[Row]:
    """The scaling rows of one sweep, ``"batch"`` or ``"hidden"``."""
    return [row for row in rows if row["sweep"] == sweep]


def _keras_rows(rows: Sequence[Row]) -> list[Row]:
    """The keras-epoch rows, the only training workload charted."""
    return [row for row in rows if row["workload"] == "keras epoch"]


def _training(figure: Figure, rows: Sequence[Row]) -> str:
    """Horizontal bars of seconds per epoch, fastest on top, coloured by kind."""
    from matplotlib.patches import Patch

    ax = figure.subplots()
    rows = sorted(rows, key=lambda row: row["median_s"])
    seconds = [row["median_s"] for row in rows]
    bars = ax.barh(range(len(rows)), seconds, color=[KINDS[row["kind"]][0] for row in rows])
    ax.bar_label(bars, labels=[_epoch_label(row) for row in rows], padding=4, fontsize=9)
    ax.set_yticks(range(len(rows)), [row["implementation"] for row in rows])
    ax.invert_yaxis()  # fastest first, read top-down
    ax.set_xlim(0, max(seconds) * 1.4)  # room for the labels right of the longest bar
    ax.set_xlabel(f"seconds per epoch ({rows[0]['samples']:,} images)")
    kinds = [kind for kind in KINDS if any(row["kind"] == kind for row in rows)]
    ax.legend(
        handles=[Patch(color=KINDS[kind][0], label=KINDS[kind][1]) for kind in kinds],
        fontsize=9,
        ncols=len(kinds),
        loc="lower center",  # above the axes, clear of the bars and their labels
        bbox_to_anchor=(0.5, 1.0),
    )
    ax.grid(axis="x", alpha=0.3)
    return "One epoch of the keras workload (784-512-10, RMSprop, batch 128)"


def _epoch_label(row: Row) -> str:
    """``"0.70 s · 1.48 of the floor's time"``; the floor itself and rows without a floor:
    seconds only."""
    label = f"{row['median_s']:#.3g}".rstrip(".") + " s"  # 0.700, 12.0; never "123."
    if row["kind"] != "floor" and row.get("vs_floor") is not None:
        label += f" · {row['vs_floor']:.2f} of the floor's time"
    return label
