"""Classification metrics on integer class labels, as scikit-learn defines them.

A confusion matrix, accuracy, precision, recall, F1 and a text report, in NumPy
alone. The numbers are scikit-learn's (``sklearn.metrics``) with its default
``zero_division``: a ratio whose denominator is zero counts as 0.0 (here without a
warning). One default differs: ``average="macro"`` rather than ``"binary"``, so
multiclass labels such as MNIST's ten digits work without an extra argument.

Labels are 1-D integer class labels: lists, integer or bool arrays, or floats that
hold whole numbers. Turn a model's class probabilities into labels first, with
``model.predict(x).argmax(axis=1)``.
"""

from __future__ import annotations

from typing import overload

import numpy as np
from numpy.typing import ArrayLike

from fastnn.validation import check_int

#: the accepted values of ``average``; ``None`` means one score per class
AVERAGES = (None, "binary", "micro", "macro", "weighted")

#: three arrays (k,), one entry per class: counts (TP, predicted, support) or scores (P, R, F1)
Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


# ------------------------------------------------------------------ validation
def _integer_array(name: str, value: ArrayLike) -> np.ndarray:
    """``value`` as a NumPy array of bools, ints or floats (whole numbers not yet checked)."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:  # ragged lists, arrays on a GPU, ...
        raise ValueError(
            f"{name} must be an array of integers; could not convert it to a NumPy array: {error}"
        ) from error
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold integers; received an array of dtype {array.dtype}")
    return array


def _to_int64(name: str, array: np.ndarray) -> np.ndarray:
    """``array`` as int64, refusing NaN, infinities and fractions."""
    if array.dtype.kind == "f":
        bad = ~np.isfinite(array) | (array != np.round(array))
        if bad.any():
            where = np.unravel_index(int(np.argmax(bad)), bad.shape)
            index = ", ".join(str(int(i)) for i in where)
            raise ValueError(
                f"{name} must hold whole numbers; received {name}[{index}]={array[where].item()!r}"
            )
    return array.astype(np.int64)


def _as_labels(name: str, value: ArrayLike) -> np.ndarray:
    """Class labels (n,) as int64, from (n,) or (n, 1); n >= 1."""
    array = _integer_array(name, value)
    if array.ndim == 2 and array.shape[1] == 1:  # what a Keras-style binary model predicts
        array = array[:, 0]
    if array.ndim != 1:
        hint = ""
        if array.ndim == 2:
            hint = f"; for class probabilities or one-hot rows pass {name}.argmax(axis=1)"
        raise ValueError(
            f"{name} must be 1-D class labels of shape (n,); received shape {array.shape}{hint}"
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty; need at least one label")
    return _to_int64(name, array)


def _check_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    true = _as_labels("y_true", y_true)
    pred = _as_labels("y_pred", y_pred)
    if true.size != pred.size:
        raise ValueError(
            f"y_true and y_pred must have the same length; received {true.size} and "
            f"{pred.size} labels"
        )
    return true, pred


def _check_labels(labels: ArrayLike) -> np.ndarray:
    """The ``labels`` argument: distinct class labels, in the caller's order."""
    classes = _as_labels("labels", labels)
    values, counts = np.unique(classes, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"labels must list each class once; received labels={labels!r}, which repeats "
            f"{values[counts > 1].tolist()}"
        )
    return classes


def _check_average(average: object) -> str | None:
    if average is None or (isinstance(average, str) and average in AVERAGES):
        return average
    allowed = ", ".join(map(repr, AVERAGES))
    raise ValueError(f"average must be one of {allowed}; received average={average!r}")


def _positive_class(present: np.ndarray, pos_label: object) -> int:
    """The class ``average="binary"`` scores, given the sorted classes that occur."""
    if not isinstance(pos_label, (int, np.integer)):
        raise TypeError(f"pos_label must be an int class label; received pos_label={pos_label!r}")
    if present.size > 2:
        raise ValueError(
            f"average='binary' needs at most two classes, but the labels hold {present.size}: "
            f"{present.tolist()}; use average='macro', 'micro', 'weighted' or None"
        )
    # With fewer than two classes occurring, scikit-learn scores pos_label anyway (zeros
    # if it never occurs), so only a pair that leaves it out is an error.
    if present.size == 2 and pos_label not in present:
        raise ValueError(
            f"pos_label must be one of the two classes {present.tolist()}; "
            f"received pos_label={pos_label!r}"
        )
    return int(pos_label)


# ------------------------------------------------------------------ counting and scoring
def _count(true: np.ndarray, pred: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Confusion matrix over ``classes`` (distinct, any order); other labels' pairs drop."""
    k = classes.size
    order = np.argsort(classes)
    ranked = classes[order]
    true_at = np.minimum(np.searchsorted(ranked, true), k - 1)
    pred_at = np.minimum(np.searchsorted(ranked, pred), k - 1)
    known = (ranked[true_at] == true) & (ranked[pred_at] == pred)
    cells = order[true_at[known]] * k + order[pred_at[known]]
    return np.bincount(cells, minlength=k * k).reshape(k, k).astype(np.int64)


def _totals(matrix: np.ndarray) -> Triple:
    """Per class: true positives, times predicted, times true (the support)."""
    return np.diagonal(matrix).copy(), matrix.sum(axis=0), matrix.sum(axis=1)


def _class_totals(true: np.ndarray, pred: np.ndarray, selected: np.ndarray) -> Triple:
    """:func:`_totals` of the ``selected`` classes, counted over every sample.

    A sample of a class left out of ``selected`` is still a false positive or negative
    of the selected class it is confused with (scikit-learn counts it so), hence the
    matrix over all classes first and the selection after.
    """
    classes = np.union1d(np.union1d(true, pred), selected)
    tp, predicted, support = _totals(_count(true, pred, classes))
    index = np.searchsorted(classes, selected)
    return tp[index], predicted[index], support[index]


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, 0.0 where the denominator is 0 (zero_division=0)."""
    out = np.zeros(numerator.shape)
    return np.divide(numerator, denominator, out=out, where=denominator != 0)


def _per_class(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> Triple:
    """Precision, recall and F1 (k,) from the totals (k,)."""
    # 2TP / (predicted + support) equals 2PR / (P + R), 0 where P + R is 0; it is the form
    # scikit-learn computes (P and R are not rounded first), so the floats match exactly.
    return _ratio(tp, predicted), _ratio(tp, support), _ratio(2 * tp, predicted + support)


def _averaged(
    tp: np.ndarray, predicted: np.ndarray, support: np.ndarray, average: str
) -> tuple[float, float, float]:
    """Precision, recall and F1 averaged over the classes whose totals (k,) are given."""
    if average == "micro":
        tp, predicted, support = (np.array([a.sum()]) for a in (tp, predicted, support))
    weights = support if average == "weighted" else None
    if tp.size == 0 or (weights is not None and not weights.any()):
        return 0.0, 0.0, 0.0  # nothing to average over: the zero-division value
    p, r, f = (float(np.average(s, weights=weights)) for s in _per_class(tp, predicted, support))
    return p, r, f


def _scores(totals: Triple, average: str | None) -> Triple | tuple[float, float, float]:
    return _per_class(*totals) if average is None else _averaged(*totals, average)


# ------------------------------------------------------------------ public API
def confusion_matrix(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    labels: ArrayLike | None = None,
    num_classes: int | None = None,
) -> np.ndarray:
    """Counts (k, k) int64: entry [i, j] is the samples of true class i predicted as j.

    y_true, y_pred: class labels (n,). The k classes are, in order: ``labels`` if given
    (samples whose true or predicted label is not listed are left out), else 0..k-1 for
    ``num_classes=k`` (every label must lie in that range), else the sorted labels that
    occur in y_true or y_pred. Give at most one of ``labels`` and ``num_classes``.
    """
    true, pred = _check_pair(y_true, y_pred)
    if labels is not None and num_classes is not None:
        raise ValueError(
            f"give labels or num_classes, not both; received labels={labels!r}, "
            f"num_classes={num_classes!r}"
        )
    if num_classes is None:
        classes = np.union1d(true, pred) if labels is None else _check_labels(labels)
        return _count(true, pred, classes)
    k = check_int("num_classes", num_classes, 1)
    for name, values in (("y_true", true), ("y_pred", pred)):
        outside = (values < 0) | (values >= k)
        if outside.any():
            i = int(np.argmax(outside))
            raise ValueError(
                f"{name} must hold labels in 0..{k - 1} with num_classes={k}; "
                f"received {name}[{i}]={int(values[i])}"
            )
    return _count(true, pred, np.arange(k))


@overload
def scores_from_confusion(matrix: ArrayLike, average: None, pos_label: int = 1) -> Triple: ...


@overload
def scores_from_confusion(
    matrix: ArrayLike, average: str = "macro", pos_label: int = 1
) -> tuple[float, float, float]: ...


def scores_from_confusion(
    matrix: ArrayLike, average: str | None = "macro", pos_label: int = 1
) -> Triple | tuple[float, float, float]:
    """Precision, recall and F1 from a confusion matrix (k, k), rows true, columns predicted.

    Row and column i belong to class i. ``average`` (default ``"macro"``) is as for
    :func:`precision`: None gives three arrays (k,), the others three floats. A class
    whose row and column are all zero occurs nowhere and is left out of the averages,
    as scikit-learn leaves out labels it never sees. ``"binary"`` scores the class
    ``pos_label`` and allows at most two classes that occur.
    """
    average = _check_average(average)
    array = _integer_array("matrix", matrix)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.size == 0:
        raise ValueError(
            f"matrix must be square, shape (k, k) with k >= 1; received shape {array.shape}"
        )
    counts = _to_int64("matrix", array)
    if (counts < 0).any():
        raise ValueError(f"matrix must hold counts >= 0; received a count of {counts.min()}")
    tp, predicted, support = _totals(counts)
    present = np.flatnonzero(predicted + support)
    if average == "binary":
        positive = _positive_class(present, pos_label)
        if not 0 <= positive < len(counts):
            raise ValueError(
                f"pos_label must be a class of the matrix, 0..{len(counts) - 1}; "
                f"received pos_label={pos_label!r}"
            )
        selected = np.array([positive])
    else:
        selected = np.arange(len(counts)) if average is None else present
    return _scores((tp[selected], predicted[selected], support[selected]), average)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """The fraction of the labels (n,) that y_pred gets right."""
    true, pred = _check_pair(y_true, y_pred)
    return float(np.mean(true == pred))


def _precision_recall_f1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    average: str | None,
    labels: ArrayLike | None,
    pos_label: int,
) -> Triple | tuple[float, float, float]:
    average = _check_average(average)
    true, pred = _check_pair(y_true, y_pred)
    present = np.union1d(true, pred)
    if average == "binary":  # scikit-learn ignores ``labels`` here: pos_label alone is scored
        selected = np.array([_positive_class(present, pos_label)])
    else:
        selected = present if labels is None else _check_labels(labels)
    return _scores(_class_totals(true, pred, selected), average)


def precision(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    average: str | None = "macro",
    labels: ArrayLike | None = None,
    pos_label: int = 1,
) -> float | np.ndarray:
    """Precision: of the samples predicted as a class, the share truly of it.

    y_true, y_pred: class labels (n,). ``average`` is one of: None (an array with one
    score per class), "binary" (class ``pos_label`` only; the labels may hold two classes
    at most), "micro" (from the counts pooled over the classes), "macro" (the mean over
    the classes; the DEFAULT, where scikit-learn's "binary" would refuse multiclass
    labels), "weighted" (the mean weighted by each class's support). ``labels`` picks and
    orders the classes (default: the sorted labels that occur); a listed class that
    occurs nowhere scores 0 and counts in the macro mean, as in scikit-learn.
    ``pos_label`` is used with "binary" only, and ``labels`` is not.
    """
    return _precision_recall_f1(y_true, y_pred, average, labels, pos_label)[0]


def recall(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    average: str | None = "macro",
    labels: ArrayLike | None = None,
    pos_label: int = 1,
) -> float | np.ndarray:
    """Recall: of the samples of a class, the share predicted as it.

    Arguments as for :func:`precision`.
    """
    return _precision_recall_f1(y_true, y_pred, average, labels, pos_label)[1]


def f1(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    average: str | None = "macro",
    labels: ArrayLike | None = None,
    pos_label: int = 1,
) -> float | np.ndarray:
    """F1: per class the harmonic mean 2PR / (P + R) of precision and recall (0 where
    P + R is 0), then averaged: macro F1 is the mean of the per-class F1, not the F1 of
    the mean P and R. Arguments as for :func:`precision`.
    """
    return _precision_recall_f1(y_true, y_pred, average, labels, pos_label)[2]


def _check_names(target_names: object, classes: np.ndarray) -> list[str]:
    """One display name per class."""
    if isinstance(target_names, (str, bytes)) or not hasattr(target_names, "__iter__"):
        raise TypeError(
            f"target_names must be a list of strings, one per class; "
            f"received target_names={target_names!r}"
        )
    names = [str(name) for name in target_names]
    if len(names) != classes.size:
        raise ValueError(
            f"target_names must name each of the {classes.size} classes {classes.tolist()}; "
            f"received {len(names)} names: target_names={target_names!r}"
        )
    return names


def classification_report(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    labels: ArrayLike | None = None,
    target_names: list[str] | None = None,
    digits: int = 2,
) -> str:
    """A text table laid out like scikit-learn's: per class precision, recall, f1-score
    and support (the true count), then lines for accuracy, macro and weighted averages.

    y_true, y_pred: class labels (n,). ``labels`` picks and orders the rows (default: the
    sorted labels that occur), ``target_names`` names them, ``digits`` sets the decimals.
    When ``labels`` leaves out a label that occurs, "micro avg" replaces "accuracy".
    """
    true, pred = _check_pair(y_true, y_pred)
    digits = check_int("digits", digits, 0)
    present = np.union1d(true, pred)
    selected = present if labels is None else _check_labels(labels)
    if target_names is None:
        names = [str(label) for label in selected]
    else:
        names = _check_names(target_names, selected)
    totals = _class_totals(true, pred, selected)
    support = int(totals[2].sum())
    width = max(len("weighted avg"), digits, *(len(name) for name in names))

    def line(name: str, p: float, r: float, f: float, count: int) -> str:
        return (
            f"{name:>{width}} " + "".join(f" {v:>9.{digits}f}" for v in (p, r, f)) + f" {count:>9}"
        )

    titles = ("precision", "recall", "f1-score", "support")
    lines = [f"{'':>{width}} " + "".join(f" {title:>9}" for title in titles), ""]
    per_class = zip(names, *_per_class(*totals), totals[2], strict=True)
    lines += [line(name, p, r, f, int(count)) for name, p, r, f, count in per_class]
    lines.append("")
    # Micro P = R = F1 = accuracy when every label that occurs has a row; scikit-learn then
    # prints the one number, as "accuracy".
    micro = _averaged(*totals, "micro")
    if np.isin(present, selected).all():
        lines.append(f"{'accuracy':>{width}} {'':20} {micro[2]:>9.{digits}f} {support:>9}")
    else:
        lines.append(line("micro avg", *micro, support))
    lines.append(line("macro avg", *_averaged(*totals, "macro"), support))
    lines.append(line("weighted avg", *_averaged(*totals, "weighted"), support))
    return "\n".join(lines) + "\n"
