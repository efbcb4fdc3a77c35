"""fastnn.metrics: hand-computed cases, edge cases, errors, and scikit-learn as the reference."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from fastnn import metrics

# Worked by hand: 3 classes, 8 samples.
#
#              predicted 0  1  2     support
#   true 0              2  1  0        3
#   true 1              0  1  1        2
#   true 2              0  0  3        3
#   predicted           2  2  4
#
# TP = (2, 1, 3); precision = TP / predicted = (1, 1/2, 3/4);
# recall = TP / support = (2/3, 1/2, 1); F1 = 2 TP / (predicted + support) = (4/5, 1/2, 6/7).
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2]
Y_PRED = [0, 1, 0, 1, 2, 2, 2, 2]
MATRIX = [[2, 1, 0], [0, 1, 1], [0, 0, 3]]
PRECISION = [1, 1 / 2, 3 / 4]
RECALL = [2 / 3, 1 / 2, 1]
F1 = [4 / 5, 1 / 2, 6 / 7]
EXPECTED = {  # average -> (precision, recall, f1)
    "macro": ((1 + 1 / 2 + 3 / 4) / 3, (2 / 3 + 1 / 2 + 1) / 3, (4 / 5 + 1 / 2 + 6 / 7) / 3),
    # weighted by support (3, 2, 3) / 8; weighted recall is always the accuracy
    "weighted": (25 / 32, 6 / 8, (3 * 4 / 5 + 2 * 1 / 2 + 3 * 6 / 7) / 8),
    # pooled: 6 TP of 8 predictions and 8 true labels
    "micro": (6 / 8, 6 / 8, 6 / 8),
}
SCORERS = (metrics.precision, metrics.recall, metrics.f1)


def _close(actual: Any, expected: Any) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ hand-computed
def test_confusion_matrix_by_hand() -> None:
    matrix = metrics.confusion_matrix(Y_TRUE, Y_PRED)
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, MATRIX)


def test_per_class_scores_by_hand() -> None:
    for scorer, expected in zip(SCORERS, (PRECISION, RECALL, F1), strict=True):
        scores = scorer(Y_TRUE, Y_PRED, average=None)
        assert isinstance(scores, np.ndarray) and scores.dtype == np.float64
        _close(scores, expected)


@pytest.mark.parametrize("average", ["macro", "weighted", "micro"])
def test_averaged_scores_by_hand(average: str) -> None:
    for scorer, expected in zip(SCORERS, EXPECTED[average], strict=True):
        score = scorer(Y_TRUE, Y_PRED, average=average)
        assert type(score) is float
        _close(score, expected)
    _close(metrics.scores_from_confusion(MATRIX, average), EXPECTED[average])


def test_default_average_is_macro() -> None:
    assert metrics.f1(Y_TRUE, Y_PRED) == metrics.f1(Y_TRUE, Y_PRED, average="macro")
    _close(metrics.scores_from_confusion(MATRIX), EXPECTED["macro"])
    # macro F1 is the mean of the per-class F1, not the F1 of macro precision and recall
    p, r, _ = EXPECTED["macro"]
    assert abs(float(metrics.f1(Y_TRUE, Y_PRED)) - 2 * p * r / (p + r)) > 1e-3


def test_accuracy_by_hand() -> None:
    assert metrics.accuracy(Y_TRUE, Y_PRED) == 6 / 8
    assert type(metrics.accuracy(Y_TRUE, Y_PRED)) is float


def test_scores_from_confusion_per_class() -> None:
    scores = metrics.scores_from_confusion(np.array(MATRIX), None)
    for actual, expected in zip(scores, (PRECISION, RECALL, F1), strict=True):
        _close(actual, expected)


def test_labels_pick_and_order_the_classes() -> None:
    # the pairs with true or predicted label 1 drop out of the matrix
    np.testing.assert_array_equal(
        metrics.confusion_matrix(Y_TRUE, Y_PRED, labels=[2, 0]), [[3, 0], [0, 2]]
    )
    _close(metrics.precision(Y_TRUE, Y_PRED, average=None, labels=[2, 0]), [3 / 4, 1])
    # ... but not out of the scores: class 2's precision still counts the 1 predicted as 2
    _close(metrics.precision(Y_TRUE, Y_PRED, labels=[2]), 3 / 4)
    # micro pools class 2 and 0 only: TP 5, predicted 6, support 6
    _close(metrics.f1(Y_TRUE, Y_PRED, labels=[2, 0], average="micro"), 5 / 6)


# ------------------------------------------------------------------ edge cases
def test_class_never_predicted_scores_zero_precision() -> None:
    y_true, y_pred = [0, 1, 2, 2], [0, 1, 1, 1]
    _close(metrics.precision(y_true, y_pred, average=None), [1, 1 / 3, 0])
    _close(metrics.recall(y_true, y_pred, average=None), [1, 1, 0])
    _close(metrics.f1(y_true, y_pred, average=None), [1, 1 / 2, 0])
    _close(metrics.precision(y_true, y_pred), (1 + 1 / 3 + 0) / 3)


def test_class_only_in_y_pred_counts_in_macro_not_weighted() -> None:
    y_true, y_pred = [0, 0, 1, 1], [0, 2, 1, 1]
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y_true, y_pred), [[1, 0, 1], [0, 2, 0], [0, 0, 0]]
    )
    _close(metrics.precision(y_true, y_pred, average=None), [1, 1, 0])
    _close(metrics.recall(y_true, y_pred, average=None), [1 / 2, 1, 0])  # 0/0 counts as 0
    _close(metrics.recall(y_true, y_pred), (1 / 2 + 1 + 0) / 3)
    _close(metrics.recall(y_true, y_pred, average="weighted"), (2 * 1 / 2 + 2 * 1) / 4)


def test_class_in_neither_is_left_out_of_the_averages() -> None:
    # class 3 of 4 occurs nowhere: a zero row and column, ignored as scikit-learn ignores it
    matrix = metrics.confusion_matrix(Y_TRUE, Y_PRED, num_classes=4)
    np.testing.assert_array_equal(matrix[:3, :3], MATRIX)
    assert not matrix[3].any() and not matrix[:, 3].any()
    for average in ("macro", "weighted", "micro"):
        _close(metrics.scores_from_confusion(matrix, average), EXPECTED[average])
    per_class = metrics.scores_from_confusion(matrix, None)
    for actual, expected in zip(per_class, (PRECISION, RECALL, F1), strict=True):
        _close(actual, [*expected, 0])


def test_listed_label_in_neither_counts_in_macro() -> None:
    # An explicit label that occurs nowhere scores 0 and is averaged in (scikit-learn's rule)
    _close(metrics.precision(Y_TRUE, Y_PRED, labels=[0, 1, 2, 5]), (1 + 1 / 2 + 3 / 4) / 4)
    _close(
        metrics.recall(Y_TRUE, Y_PRED, labels=[0, 1, 2, 5], average="weighted"),
        EXPECTED["weighted"][1],
    )
    _close(metrics.f1(Y_TRUE, Y_PRED, labels=[0, 1, 2, 5], average=None), [*F1, 0])


def test_perfect_predictions() -> None:
    labels = [3, 1, 4, 1, 5, 9, 2, 6]
    matrix = metrics.confusion_matrix(labels, labels)
    np.testing.assert_array_equal(matrix, np.diag([2, 1, 1, 1, 1, 1, 1]))
    assert metrics.accuracy(labels, labels) == 1.0
    for average in ("macro", "weighted", "micro"):
        assert metrics.scores_from_confusion(matrix, average) == (1.0, 1.0, 1.0)
        assert [scorer(labels, labels, average=average) for scorer in SCORERS] == [1.0] * 3


def test_nothing_to_average_scores_zero() -> None:
    # the zero-division value: no listed class has support, or no class occurs at all
    assert metrics.precision([0, 0], [1, 1], labels=[1], average="weighted") == 0.0
    assert metrics.recall([0, 0], [0, 0], labels=[1], average="weighted") == 0.0
    for average in ("macro", "weighted", "micro"):
        assert metrics.scores_from_confusion(np.zeros((3, 3)), average) == (0.0, 0.0, 0.0)


def test_binary_with_pos_label() -> None:
    # class 1: TP 3, predicted 4, support 3; class 0: TP 1, predicted 1, support 2
    y_true, y_pred = [0, 0, 1, 1, 1], [0, 1, 1, 1, 1]
    scores = [scorer(y_true, y_pred, average="binary") for scorer in SCORERS]
    _close(scores, [3 / 4, 1, 6 / 7])
    scores = [scorer(y_true, y_pred, average="binary", pos_label=0) for scorer in SCORERS]
    _close(scores, [1, 1 / 2, 2 / 3])
    matrix = metrics.confusion_matrix(y_true, y_pred)
    _close(metrics.scores_from_confusion(matrix, "binary"), [3 / 4, 1, 6 / 7])
    _close(metrics.scores_from_confusion(matrix, "binary", pos_label=0), [1, 1 / 2, 2 / 3])


def test_binary_pos_label_that_never_occurs_scores_zero() -> None:
    assert metrics.precision([0, 0], [0, 0], average="binary") == 0.0
    assert metrics.f1([1, 1], [1, 1], average="binary") == 1.0
    # a 10-class matrix in which only two classes occur is binary too
    matrix = np.zeros((10, 10), np.int64)
    matrix[1, 1], matrix[7, 1], matrix[7, 7] = 2, 1, 1
    _close(metrics.scores_from_confusion(matrix, "binary", pos_label=7), [1, 1 / 2, 2 / 3])


def test_label_forms_accepted() -> None:
    expected = metrics.confusion_matrix(Y_TRUE, Y_PRED)
    column = np.array(Y_PRED)[:, None]  # what a model with one output predicts
    np.testing.assert_array_equal(metrics.confusion_matrix(Y_TRUE, column), expected)
    floats = np.array(Y_TRUE, dtype=np.float32)
    np.testing.assert_array_equal(metrics.confusion_matrix(floats, Y_PRED), expected)
    np.testing.assert_array_equal(
        metrics.confusion_matrix([True, False, True], [1, 0, 0]), [[1, 0], [1, 1]]
    )
    np.testing.assert_array_equal(
        metrics.confusion_matrix([-3, 10, 10], [10, 10, -3]), [[0, 1], [1, 1]]
    )
    float_matrix = np.array(MATRIX, dtype=np.float32)  # counts accumulated as floats
    _close(metrics.scores_from_confusion(float_matrix), EXPECTED["macro"])


# ------------------------------------------------------------------ classification_report
def _parse_report(text: str) -> dict[str, list[str]]:
    """Row name -> its number fields as printed (the accuracy row has two)."""
    rows = {}
    for line in text.splitlines()[2:]:
        if line.strip():
            fields = line.split()
            count = 2 if fields[0] == "accuracy" else 4
            rows[" ".join(fields[:-count])] = fields[-count:]
    return rows


def test_classification_report_by_hand() -> None:
    text = metrics.classification_report(Y_TRUE, Y_PRED, target_names=["cat", "dog", "emu"])
    lines = text.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[1] == "" and lines[5] == ""
    assert _parse_report(text) == {
        "cat": ["1.00", "0.67", "0.80", "3"],
        "dog": ["0.50", "0.50", "0.50", "2"],
        "emu": ["0.75", "1.00", "0.86", "3"],
        "accuracy": ["0.75", "8"],
        "macro avg": ["0.75", "0.72", "0.72", "8"],
        "weighted avg": ["0.78", "0.75", "0.75", "8"],
    }
    # the columns line up: every number ends where its header does
    header_ends = [m.end() for m in re.finditer(r"\S+", lines[0])]
    assert [m.end() for m in re.finditer(r"\S+", lines[2])][1:] == header_ends


def test_classification_report_subset_and_digits() -> None:
    text = metrics.classification_report(Y_TRUE, Y_PRED, labels=[2, 0], digits=4)
    assert _parse_report(text) == {
        "2": ["0.7500", "1.0000", "0.8571", "3"],
        "0": ["1.0000", "0.6667", "0.8000", "3"],
        # class 1 has no row, so the micro average is not the accuracy
        "micro avg": ["0.8333", "0.8333", "0.8333", "6"],
        "macro avg": ["0.8750", "0.8333", "0.8286", "6"],
        "weighted avg": ["0.8750", "0.8333", "0.8286", "6"],
    }


# ------------------------------------------------------------------ errors
BAD_LABELS = [
    (["a", "b"], TypeError, "y_true must hold integers; received an array of dtype <U1"),
    ([[0, 1], [1]], ValueError, "y_true must be an array of integers; could not convert"),
    ([0.0, np.nan], ValueError, "y_true must hold whole numbers; received y_true[1]=nan"),
    ([0.0, 1.5], ValueError, "y_true must hold whole numbers; received y_true[1]=1.5"),
    ([0, np.inf], ValueError, "y_true must hold whole numbers; received y_true[1]=inf"),
    ([], ValueError, "y_true is empty; need at least one label"),
    (3, ValueError, "y_true must be 1-D class labels of shape (n,); received shape ()"),
]


@pytest.mark.parametrize(("y_true", "error", "message"), BAD_LABELS)
def test_bad_labels_are_refused(y_true: Any, error: type[Exception], message: str) -> None:
    for function in (metrics.confusion_matrix, metrics.accuracy, metrics.f1):
        with pytest.raises(error, match=re.escape(message)):
            function(y_true, [0, 1])


def test_probabilities_as_y_pred_get_the_argmax_hint() -> None:
    probabilities = np.full((4, 3), 1 / 3)
    message = r"y_pred must be 1-D .* received shape \(4, 3\); .* pass y_pred\.argmax\(axis=1\)"
    for function in (metrics.confusion_matrix, metrics.precision, metrics.classification_report):
        with pytest.raises(ValueError, match=message):
            function([0, 1, 2, 0], probabilities)


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError, match=re.escape("same length; received 3 and 2 labels")):
        metrics.recall([0, 1, 1], [0, 1])


@pytest.mark.parametrize("average", ["mean", "MACRO", "samples", 1])
def test_unknown_average(average: object) -> None:
    message = re.escape(
        "average must be one of None, 'binary', 'micro', 'macro', 'weighted'; "
        f"received average={average!r}"
    )
    with pytest.raises(ValueError, match=message):
        metrics.precision(Y_TRUE, Y_PRED, average=average)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        metrics.scores_from_confusion(MATRIX, average)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"num_classes": 3, "y_true": [0, -1]},
            "y_true must hold labels in 0..2 with num_classes=3; received y_true[1]=-1",
        ),
        (
            {"num_classes": 2, "y_pred": [0, 2]},
            "y_pred must hold labels in 0..1 with num_classes=2; received y_pred[1]=2",
        ),
        ({"num_classes": 0}, "num_classes must be an int >= 1; received num_classes=0"),
        ({"num_classes": 2.0}, "num_classes must be an int >= 1; received num_classes=2.0"),
        (
            {"num_classes": 2, "labels": [0, 1]},
            "give labels or num_classes, not both; received labels=[0, 1], num_classes=2",
        ),
        (
            {"labels": [0, 1, 0]},
            "labels must list each class once; received labels=[0, 1, 0], which repeats [0]",
        ),
        ({"labels": []}, "labels is empty"),
        ({"labels": [0.5]}, "labels must hold whole numbers; received labels[0]=0.5"),
    ],
)
def test_confusion_matrix_argument_errors(kwargs: dict[str, Any], message: str) -> None:
    arguments = {"y_true": [0, 1], "y_pred": [1, 1], **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        metrics.confusion_matrix(**arguments)


def test_binary_errors() -> None:
    message = "average='binary' needs at most two classes, but the labels hold 3: [0, 1, 2]"
    with pytest.raises(ValueError, match=re.escape(message)):
        metrics.f1(Y_TRUE, Y_PRED, average="binary")
    with pytest.raises(ValueError, match=re.escape(message)):
        metrics.scores_from_confusion(MATRIX, "binary")
    message = "pos_label must be one of the two classes [0, 1]; received pos_label=2"
    with pytest.raises(ValueError, match=re.escape(message)):
        metrics.recall([0, 1], [1, 1], average="binary", pos_label=2)
    with pytest.raises(TypeError, match=re.escape("received pos_label='1'")):
        metrics.recall([0, 1], [1, 1], average="binary", pos_label="1")  # type: ignore[arg-type]
    message = "pos_label must be a class of the matrix, 0..1; received pos_label=5"
    with pytest.raises(ValueError, match=re.escape(message)):
        metrics.scores_from_confusion([[3, 0], [0, 0]], "binary", pos_label=5)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        ([[1, 2, 3]], "matrix must be square, shape (k, k) with k >= 1; received shape (1, 3)"),
        (np.zeros((0, 0)), "received shape (0, 0)"),
        ([[1, -1], [0, 2]], "matrix must hold counts >= 0; received a count of -1"),
        ([[1, 0.5], [0, 2]], "matrix must hold whole numbers; received matrix[0, 1]=0.5"),
    ],
)
def test_scores_from_confusion_refuses_bad_matrices(matrix: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        metrics.scores_from_confusion(matrix)


def test_classification_report_argument_errors() -> None:
    message = "target_names must name each of the 3 classes [0, 1, 2]; received 2 names"
    with pytest.raises(ValueError, match=re.escape(message)):
        metrics.classification_report(Y_TRUE, Y_PRED, target_names=["cat", "dog"])
    with pytest.raises(TypeError, match=re.escape("received target_names='abc'")):
        metrics.classification_report(Y_TRUE, Y_PRED, target_names="abc")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=re.escape("digits must be an int >= 0; received digits=-1")
    ):
        metrics.classification_report(Y_TRUE, Y_PRED, digits=-1)


# ------------------------------------------------------------------ against scikit-learn
@pytest.fixture(scope="module")
def skm() -> ModuleType:
    return pytest.importorskip("sklearn.metrics")


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels drawn from a random set of class values (gaps, negatives, 1 to 8 classes),
    y_pred right about half the time, and a random ``labels`` list for the same data."""
    rng = np.random.default_rng(seed)
    values = rng.choice(np.arange(-3, 12), size=rng.integers(1, 9), replace=False)
    n = int(rng.integers(1, 40))
    y_true = rng.choice(values, n)
    # some classes only in y_pred, some only in y_true, some in neither
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.choice(values, n))
    if seed % 3 == 0:
        y_pred = y_pred[rng.permutation(n)]
    # 1 to 5 labels in a random order, some of which may occur nowhere
    labels = rng.choice(np.arange(-3, 15), size=rng.integers(1, 6), replace=False)
    return y_true, y_pred, labels


SEEDS = range(80)
# scikit-learn warns on data with a single class, which some random cases have
SINGLE_CLASS_WARNING = pytest.mark.filterwarnings("ignore:A single label was found")


@SINGLE_CLASS_WARNING
@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix_and_accuracy_match_sklearn(skm: ModuleType, seed: int) -> None:
    y_true, y_pred, labels = _random_case(seed)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y_true, y_pred), skm.confusion_matrix(y_true, y_pred)
    )
    if np.isin(labels, y_true).any():  # scikit-learn refuses labels none of which is in y_true
        np.testing.assert_array_equal(
            metrics.confusion_matrix(y_true, y_pred, labels=labels),
            skm.confusion_matrix(y_true, y_pred, labels=labels),
        )
    assert metrics.accuracy(y_true, y_pred) == skm.accuracy_score(y_true, y_pred)


def _sklearn_scores(skm: ModuleType, *args: Any, **kwargs: Any) -> tuple[Any, Any, Any]:
    p, r, f, _ = skm.precision_recall_fscore_support(*args, zero_division=0, **kwargs)
    return p, r, f


@SINGLE_CLASS_WARNING
@pytest.mark.parametrize("seed", SEEDS)
def test_scores_match_sklearn(skm: ModuleType, seed: int) -> None:
    y_true, y_pred, labels = _random_case(seed)
    for average in (None, "micro", "macro", "weighted"):
        expected = _sklearn_scores(skm, y_true, y_pred, average=average)
        actual = [scorer(y_true, y_pred, average=average) for scorer in SCORERS]
        _close(actual, expected)
        expected = _sklearn_scores(skm, y_true, y_pred, average=average, labels=labels)
        actual = [scorer(y_true, y_pred, average=average, labels=labels) for scorer in SCORERS]
        _close(actual, expected)
    present = np.union1d(y_true, y_pred)
    if present.size <= 2:
        for pos_label in present:
            # scikit-learn ignores labels with "binary" (it scores pos_label), and so do we
            kwargs = {"average": "binary", "pos_label": pos_label, "labels": labels}
            expected = _sklearn_scores(skm, y_true, y_pred, **kwargs)
            _close([scorer(y_true, y_pred, **kwargs) for scorer in SCORERS], expected)


@SINGLE_CLASS_WARNING
@pytest.mark.parametrize("seed", SEEDS)
def test_scores_from_confusion_match_sklearn(skm: ModuleType, seed: int) -> None:
    # as the training loop uses it: a matrix over 0..K-1 with classes that never occur
    y_true, y_pred, _ = _random_case(seed)
    y_true, y_pred = y_true + 3, y_pred + 3  # labels >= 0: class indices
    matrix = metrics.confusion_matrix(y_true, y_pred, num_classes=16)
    for average in ("micro", "macro", "weighted"):
        expected = _sklearn_scores(skm, y_true, y_pred, average=average)
        _close(metrics.scores_from_confusion(matrix, average), expected)
    expected = _sklearn_scores(skm, y_true, y_pred, average=None, labels=np.arange(16))
    _close(metrics.scores_from_confusion(matrix, None), expected)


@SINGLE_CLASS_WARNING
@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_matches_sklearn(skm: ModuleType, seed: int) -> None:
    y_true, y_pred, labels = _random_case(seed)
    digits = seed % 5
    cases: list[dict[str, Any]] = [{}, {"labels": labels}]
    for kwargs in cases:
        text = metrics.classification_report(y_true, y_pred, digits=digits, **kwargs)
        reference = skm.classification_report(
            y_true, y_pred, digits=digits, output_dict=True, zero_division=0, **kwargs
        )
        expected = {}
        for name, row in reference.items():
            if name == "accuracy":
                expected[name] = [f"{row:.{digits}f}", str(len(y_true))]
            else:
                scores = (row["precision"], row["recall"], row["f1-score"])
                expected[name] = [f"{v:.{digits}f}" for v in scores] + [str(int(row["support"]))]
        assert _parse_report(text) == expected
