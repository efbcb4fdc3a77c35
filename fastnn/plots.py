"""Pictures of a training run as PNG files (needs the ``[plot]`` extra: matplotlib).

* ``plot_history``: loss, metrics and learning rate per epoch, train beside validation.
* ``plot_confusion_matrix``: a heatmap of true against predicted labels, counts in the cells.
* ``plot_digits``: a grid of sample images titled with their true and predicted labels,
  the misclassified ones in red.

Each draws on ``matplotlib.figure.Figure`` with the Agg canvas directly (``agg_figure``), so
it neither needs a display nor touches pyplot's global state (backend, open figures), and
returns the path it wrote. matplotlib is imported only when a picture is drawn: ``fastnn``
itself imports without it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from fastnn.callbacks import History
from fastnn.extras import install_hint
from fastnn.validation import shown as _shown

if TYPE_CHECKING:  # matplotlib is optional and untyped to mypy: these are ``Any`` there
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

__all__ = ["agg_figure", "plot_confusion_matrix", "plot_digits", "plot_history"]

MISSING_MATPLOTLIB = f"fastnn plots need matplotlib: {install_hint('plot', 'matplotlib')}"
DPI = 120
#: metrics that are fractions of the samples, shown as percentages
FRACTIONS = ("accuracy", "precision", "recall", "f1")
TRAIN, VALIDATION = "tab:blue", "tab:orange"
WRONG = "tab:red"  # a misclassified digit's title and frame
#: history curves get a marker per epoch up to this many epochs; beyond, they would blur
MARKERS_UP_TO = 30


@contextmanager
def agg_figure(path: str | Path, size_in: tuple[float, float], dpi: int = DPI) -> Iterator[Figure]:
    """A blank constrained-layout ``Figure`` of ``size_in`` inches on the Agg canvas, saved as
    ``path`` (its folders created) when the block ends without an error.

    Raises ImportError with the install hint when matplotlib is missing.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(MISSING_MATPLOTLIB) from error
    figure = Figure(figsize=size_in, dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself: savefig renders with Agg, no pyplot
    yield figure
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=dpi)


def _percent_ticks(axis: Axis) -> None:
    """Tick labels of a fraction axis as plain percentages: 0.965 as ``96.5``; the label says %."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{100 * value:.4g}"))


# ------------------------------------------------------------------ history
def plot_history(
    history: History | Mapping[str, Sequence[float]],
    path: str | Path,
    *,
    test_accuracy: float | None = None,
) -> Path:
    """Write the training curves of ``history`` (a ``History`` or its ``.history`` dict).

    A panel for the loss, one per other metric (train and validation together) and one for
    the learning rate (log scale) when it changed during training; the x axis counts
    epochs from 1. ``test_accuracy``, when known, goes in the title.
    """
    series = _history_series(history)
    panels = _panel_names(series)
    epochs = len(next(iter(series.values())))
    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    with agg_figure(path, (4.2 * columns, 3.2 * rows + 0.5)) as figure:
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for ax, name in zip(axes, panels, strict=False):  # spare cells: hidden below
            _history_panel(ax, name, series)
        for ax in axes[len(panels) :]:
            ax.set_visible(False)
        figure.suptitle(_history_title(epochs, test_accuracy))
    return Path(path)


def _history_title(epochs: int, test_accuracy: float | None) -> str:
    title = f"Training history: {epochs} epoch{'s' if epochs != 1 else ''}"
    return title if test_accuracy is None else f"{title}; test accuracy {test_accuracy:.2%}"


def _history_series(history: object) -> dict[str, np.ndarray]:
    """Each recorded series as a 1-D float array, all of one length (the epochs)."""
    records = history.history if isinstance(history, History) else history
    if not isinstance(records, Mapping):
        raise TypeError(
            f"history must be a fastnn.callbacks.History or a dict of lists; "
            f"received history={_shown(history)}"
        )
    if not records:
        raise ValueError(f"history is empty: nothing was trained; received history={records!r}")
    series = {}
    for key, values in records.items():
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError):  # text, ragged lists: refused below
            array = np.empty(0)
        if array.ndim != 1 or not array.size:
            raise ValueError(
                f"history[{key!r}] must be a non-empty list of numbers; received {_shown(values)}"
            )
        series[str(key)] = array
    lengths = {key: len(values) for key, values in series.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"history's series must have one value per epoch; received {lengths}")
    return series


def _panel_names(series: Mapping[str, np.ndarray]) -> list[str]:
    """One name per panel: the loss first, the learning rate last (when it ever changed: a
    flat line says nothing), a metric's val_ twin merged."""
    names = list(dict.fromkeys(key.removeprefix("val_") for key in series))
    rate = series.get("learning_rate")
    if rate is not None and np.ptp(rate) == 0:
        names.remove("learning_rate")
    last = ["learning_rate"] if "learning_rate" in names else []
    first = ["loss"] if "loss" in names else []
    return first + [name for name in names if name not in (*first, *last)] + last


def _history_panel(ax: Axes, name: str, series: Mapping[str, np.ndarray]) -> None:
    """One quantity against the epoch: the training curve and, when recorded, validation."""
    from matplotlib.ticker import MaxNLocator

    fraction = name in FRACTIONS
    epochs = np.arange(1, len(next(iter(series.values()))) + 1)
    marker = "o" if len(epochs) <= MARKERS_UP_TO else None
    own = "learning rate" if name == "learning_rate" else "train"
    for key, label, colour in ((name, own, TRAIN), (f"val_{name}", "validation", VALIDATION)):
        if key in series:
            last = series[key][-1]
            value = f"{last:.2%}" if fraction else f"{last:.4g}"
            ax.plot(epochs, series[key], marker=marker, color=colour, label=f"{label}: {value}")
    ax.set_title(name.replace("_", " "))
    ax.set_xlabel("epoch")
    # whole epochs only, and a tick even when there is a single one
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))
    pad = 0.5 if marker else 0.0  # room for the end markers; a lone epoch gets an axis too
    ax.set_xlim(1 - pad, len(epochs) + pad)
    ax.grid(alpha=0.3)
    if name == "learning_rate":
        ax.set_yscale("log")  # schedules decay by factors
        ax.set_ylabel("learning rate (log scale)")
    elif fraction:
        _percent_ticks(ax.yaxis)
        ax.set_ylabel(f"{name} (%)")
    else:
        ax.set_ylabel(name)
    ax.legend(title="last epoch", fontsize=8, title_fontsize=8)


# -------------------------------------------------------- confusion matrix
def plot_confusion_matrix(
    matrix: ArrayLike,
    path: str | Path,
    class_names: Sequence[object] | None = None,
    normalize: bool = False,
) -> Path:
    """Write ``matrix`` (K, K) of counts, rows the true label and columns the predicted one,
    as a heatmap with the count in each cell and the accuracy in the title.

    ``normalize`` colours each cell by its share of the row (of that true label's samples)
    and writes that share under the count, so rare classes show their errors as clearly.
    """
    counts = _square_counts(matrix)
    k = len(counts)
    names = [str(i) for i in range(k)] if class_names is None else [str(n) for n in class_names]
    if len(names) != k:
        raise ValueError(
            f"class_names must name each of the {k} classes; received {len(names)}: "
            f"class_names={_shown(class_names)}"
        )
    total, correct = int(counts.sum()), int(np.trace(counts))
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    side = min(3.0 + 0.6 * k, 14.0)
    with agg_figure(path, (side + 1.0, side)) as figure:
        from matplotlib.colors import PowerNorm  # once agg_figure found matplotlib

        ax = figure.subplots()
        # a square-root scale: a linear one leaves the few errors as white as the zeros
        image = ax.imshow(
            shares if normalize else counts,
            cmap="Blues",
            norm=PowerNorm(0.5, 0, 1 if normalize else None),
        )
        bar = figure.colorbar(image, ax=ax, shrink=0.8)
        if normalize:
            _percent_ticks(bar.ax.yaxis)
            bar.set_label("% of the true label's samples (square-root scale)")
        else:
            bar.set_label("samples (square-root scale)")
        _cell_texts(ax, image, counts, shares, normalize)
        ax.set_xticks(range(k), names, rotation=90 if max(map(len, names)) > 3 else 0)
        ax.set_yticks(range(k), names)
        ax.set_xlabel("predicted label")
        ax.set_ylabel("true label")
        ax.set_title(f"Confusion matrix: accuracy {correct / total:.2%} ({correct:,} of {total:,})")
    return Path(path)


def _square_counts(matrix: ArrayLike) -> np.ndarray:
    """``matrix`` as a (K, K) integer array of counts, not all zero."""
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or not counts.size:
        raise ValueError(f"matrix must be square (K, K); received shape {counts.shape}")
    if counts.dtype.kind not in "iu":
        raise ValueError(f"matrix must hold integer counts; received dtype {counts.dtype}")
    if (counts < 0).any():
        raise ValueError(f"matrix counts must be >= 0; received a minimum of {counts.min()}")
    if not counts.any():
        raise ValueError("matrix is all zeros: there are no samples to plot")
    return counts


def _cell_texts(
    ax: Axes, image: AxesImage, counts: np.ndarray, shares: np.ndarray, normalize: bool
) -> None:
    """Each cell's count (and share), white on dark cells and black on light ones."""
    k = len(counts)
    size = max(5.0, min(10.0, 100.0 / k))  # smaller text as the cells shrink
    colours = np.asarray(image.cmap(image.norm(shares if normalize else counts)))  # (K, K, 4)
    for row, column in np.ndindex(counts.shape):
        red, green, blue, _ = colours[row, column]
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # perceived brightness
        count = counts[row, column]
        text = f"{count}\n{shares[row, column]:.1%}" if normalize else f"{count}"
        ax.text(
            column,
            row,
            text,
            ha="center",
            va="center",
            fontsize=size,
            color="white" if dark else "black" if count else "0.6",  # zeros recede
        )


# ------------------------------------------------------------------- digits
def plot_digits(
    images: ArrayLike,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    path: str | Path,
    count: int = 25,
    seed: int = 0,
) -> Path:
    """Write a grid of ``count`` of ``images`` titled "true T / pred P", misclassified in red.

    ``images`` is (n, side * side) or (n, height, width), on any scale. When some are
    misclassified, up to half the grid shows them (at least one) and the rest correct ones,
    both picked at random with ``seed``.
    """
    pictures = _pictures(images)
    true = _labels("y_true", y_true, len(pictures))
    pred = _labels("y_pred", y_pred, len(pictures))
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be an int >= 1; received count={count!r}")
    chosen = _sample(true, pred, count, seed)
    wrong_in_all = int((true != pred).sum())
    columns = math.ceil(math.sqrt(len(chosen)))
    rows = math.ceil(len(chosen) / columns)
    shown = pictures[chosen]
    low, high = float(shown.min()), float(shown.max())
    with agg_figure(path, (max(1.5 * columns, 6.0), 1.6 * rows + 0.7)) as figure:
        axes = figure.subplots(rows, columns, squeeze=False).ravel()
        for ax, index, picture in zip(axes, chosen, shown, strict=False):  # spare: hidden
            wrong = bool(true[index] != pred[index])
            ax.imshow(picture, cmap="gray_r", vmin=low, vmax=high)  # dark ink on white
            ax.set_xticks([])  # not axis("off"): that would hide the frame too
            ax.set_yticks([])
            ax.set_title(
                f"true {true[index]} / pred {pred[index]}",
                fontsize=9,
                color=WRONG if wrong else "black",
                fontweight="bold" if wrong else "normal",
            )
            for spine in ax.spines.values():
                spine.set(color=WRONG if wrong else "0.7", linewidth=3.0 if wrong else 0.8)
        for ax in axes[len(chosen) :]:
            ax.set_visible(False)
        shown_wrong = int((true[chosen] != pred[chosen]).sum())
        figure.suptitle(_digits_title(len(chosen), shown_wrong, wrong_in_all, len(pictures)))
    return Path(path)


def _digits_title(shown: int, shown_wrong: int, wrong: int, total: int) -> str:
    """What the grid shows and what its red marks mean."""
    if not wrong:
        return f"{shown} of {total:,} samples, none misclassified"
    return (
        f"{shown} of {total:,} samples, the misclassified picked on purpose (red): "
        f"{shown_wrong} here, {wrong:,} of {total:,} ({wrong / total:.1%}) in all"
    )


def _pictures(images: ArrayLike) -> np.ndarray:
    """``images`` as a float array (n, height, width)."""
    array = np.asarray(images)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"images must hold numbers; received dtype {array.dtype}")
    if array.ndim not in (2, 3) or not array.size:
        raise ValueError(
            f"images must be (n, pixels) or (n, height, width), not empty; "
            f"received shape {array.shape}"
        )
    if array.ndim == 2:
        side = math.isqrt(array.shape[1])
        if side * side != array.shape[1]:
            raise ValueError(
                f"images of {array.shape[1]} pixels are not square; pass (n, height, width) "
                f"or a square number of pixels; received shape {array.shape}"
            )
        array = array.reshape(len(array), side, side)
    return array.astype(float, copy=False)


def _labels(name: str, labels: ArrayLike, n: int) -> np.ndarray:
    """``labels`` as a 1-D array of one label per image."""
    array = np.asarray(labels)
    if array.shape != (n,):
        raise ValueError(
            f"{name} must hold one label per image, shape ({n},); received shape {array.shape}"
        )
    return array


def _sample(true: np.ndarray, pred: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of ``count`` samples (all, when fewer), sorted: up to half of them (at least
    one) misclassified when any are, the rest correct; either kind fills in when the other
    runs short."""
    rng = np.random.default_rng(seed)
    wrong = np.flatnonzero(true != pred)
    right = np.flatnonzero(true == pred)
    count = min(count, len(true))
    n_wrong = min(len(wrong), max(count // 2, 1))
    n_right = min(len(right), count - n_wrong)
    n_wrong = count - n_right
    chosen = np.concatenate(
        [rng.choice(wrong, n_wrong, replace=False), rng.choice(right, n_right, replace=False)]
    )
    return np.sort(chosen)
