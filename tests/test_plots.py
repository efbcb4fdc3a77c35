"""The training pictures: PNGs that show something, red marks where due, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fastnn import cli, plots, recipes
from fastnn.callbacks import History

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FULL_HISTORY = {
    "loss": [0.9, 0.5, 0.3],
    "accuracy": [0.7, 0.85, 0.9],
    "precision": [0.6, 0.8, 0.9],
    "recall": [0.5, 0.7, 0.85],
    "f1": [0.55, 0.75, 0.87],
    "val_loss": [0.8, 0.6, 0.5],
    "val_accuracy": [0.72, 0.8, 0.84],
    "val_precision": [0.6, 0.7, 0.8],
    "val_recall": [0.5, 0.6, 0.7],
    "val_f1": [0.55, 0.65, 0.75],
    "learning_rate": [1e-3, 5e-4, 2.5e-4],
}


@pytest.fixture
def matplotlib() -> Any:
    """matplotlib, or skip: the pictures need the [plot] extra."""
    return pytest.importorskip("matplotlib")


def _pixels(path: Path) -> np.ndarray:
    """The RGB(A) pixels of the PNG at ``path``, after checking it is one that shows something."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)
    colours = {tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::97]}
    assert len(colours) > 20, f"{path.name} is nearly blank"
    return pixels


def _red(pixels: np.ndarray) -> int:
    """How many pixels are strongly red (the marks of a misclassified digit)."""
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return int(((red > 0.6) & (green < 0.35) & (blue < 0.35)).sum())


def _digits(n: int = 60, wrong: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` noisy flat 28x28 "images" in [0, 1] and labels; the first ``wrong`` mispredicted."""
    rng = np.random.default_rng(1)
    images = rng.random((n, 784)).astype(np.float32)
    y_true = np.arange(n) % 10
    y_pred = y_true.copy()
    y_pred[:wrong] = (y_pred[:wrong] + 1) % 10
    return images, y_true, y_pred


# ------------------------------------------------------------------ history
def test_history_has_a_panel_per_quantity(matplotlib: Any, tmp_path: Path) -> None:
    full = plots.plot_history(FULL_HISTORY, tmp_path / "new" / "full.png")  # folder created
    assert full == tmp_path / "new" / "full.png"
    loss_only = plots.plot_history({"loss": [0.5, 0.3]}, tmp_path / "loss.png")
    full_pixels, loss_pixels = _pixels(full), _pixels(loss_only)
    # six panels (loss, accuracy, precision, recall, f1, learning rate) fill two rows of three
    assert full_pixels.shape[0] > 1.5 * loss_pixels.shape[0]
    assert full_pixels.shape[1] > 2.5 * loss_pixels.shape[1]


def test_history_takes_the_callback_and_a_single_epoch(matplotlib: Any, tmp_path: Path) -> None:
    history = History()
    history.on_train_begin()
    history.on_epoch_end(0, {"loss": 0.4, "accuracy": 0.9})
    _pixels(plots.plot_history(history, tmp_path / "one.png"))


def test_history_panels_put_loss_first_and_learning_rate_last() -> None:
    series = {key: np.asarray(values) for key, values in FULL_HISTORY.items()}
    names = plots._panel_names({"learning_rate": series["learning_rate"], **series})
    assert names == ["loss", "accuracy", "precision", "recall", "f1", "learning_rate"]


def test_a_learning_rate_that_never_changed_gets_no_panel() -> None:
    series = {"loss": np.array([0.5, 0.4]), "learning_rate": np.array([1e-3, 1e-3])}
    assert plots._panel_names(series) == ["loss"]
    series["learning_rate"] = np.array([1e-3, 5e-4])
    assert plots._panel_names(series) == ["loss", "learning_rate"]


def test_the_test_accuracy_goes_in_the_title(matplotlib: Any, tmp_path: Path) -> None:
    assert plots._history_title(5, 0.98114) == "Training history: 5 epochs; test accuracy 98.11%"
    assert plots._history_title(1, None) == "Training history: 1 epoch"
    plain = _pixels(plots.plot_history(FULL_HISTORY, tmp_path / "plain.png"))
    titled = _pixels(plots.plot_history(FULL_HISTORY, tmp_path / "t.png", test_accuracy=0.98))
    assert plain.shape == titled.shape and (plain != titled).any()


def test_the_digits_title_says_the_errors_were_picked_on_purpose() -> None:
    assert plots._digits_title(25, 12, 189, 10000) == (
        "25 of 10,000 samples, the misclassified picked on purpose (red): "
        "12 here, 189 of 10,000 (1.9%) in all"
    )


# -------------------------------------------------------- confusion matrix
def test_confusion_matrix_plain_and_normalized(matplotlib: Any, tmp_path: Path) -> None:
    matrix = np.diag([980, 1130, 1000]) + np.array([[0, 3, 7], [2, 0, 0], [40, 1, 0]])
    plain = _pixels(plots.plot_confusion_matrix(matrix, tmp_path / "plain.png"))
    shares = _pixels(
        plots.plot_confusion_matrix(
            matrix, tmp_path / "shares.png", class_names=["cat", "dog", "bird"], normalize=True
        )
    )
    assert plain.shape == shares.shape and (plain != shares).any()


# ------------------------------------------------------------------- digits
def test_digits_mark_the_misclassified_in_red(matplotlib: Any, tmp_path: Path) -> None:
    images, y_true, y_pred = _digits()
    marked = _pixels(plots.plot_digits(images, y_true, y_pred, tmp_path / "marked.png"))
    clean = _pixels(plots.plot_digits(images, y_true, y_true, tmp_path / "clean.png"))
    assert _red(marked) > 500  # titles and frames
    assert _red(clean) == 0


def test_digits_take_square_images_on_any_scale(matplotlib: Any, tmp_path: Path) -> None:
    images, y_true, y_pred = _digits(n=7)
    as_bytes = (images.reshape(-1, 28, 28) * 255).astype(np.uint8)
    _pixels(plots.plot_digits(as_bytes, list(y_true), list(y_pred), tmp_path / "d.png", count=9))


def test_the_sample_shows_misclassified_ones_when_there_are_any() -> None:
    _, y_true, y_pred = _digits(n=60, wrong=10)
    chosen = plots._sample(y_true, y_pred, 25, seed=0)
    wrong = y_true[chosen] != y_pred[chosen]
    assert len(set(chosen)) == 25 and list(chosen) == sorted(chosen)
    assert wrong.sum() == 10  # up to half the grid: all 10 of them
    assert (plots._sample(y_true, y_pred, 25, seed=0) == chosen).all()  # seeded
    few = plots._sample(y_true, y_pred, 3, seed=0)
    assert (y_true[few] != y_pred[few]).sum() == 1  # half of 3, rounded down
    single = plots._sample(y_true, y_pred, 1, seed=5)
    assert y_true[single] != y_pred[single]  # the one shown is an error


def test_the_sample_is_correct_ones_only_without_errors_and_fills_up() -> None:
    _, y_true, _ = _digits(n=60)
    chosen = plots._sample(y_true, y_true, 25, seed=0)
    assert len(chosen) == 25
    everything = plots._sample(y_true, (y_true + 1) % 10, 100, seed=0)
    assert list(everything) == list(range(60))  # fewer images than asked: all, all wrong


# ------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: plots.plot_history({}, p), r"history is empty"),
        (lambda p: plots.plot_history([0.5], p), r"history must be .*received history=\[0\.5\]"),
        (lambda p: plots.plot_history({"loss": []}, p), r"history\['loss'\] must be a non-empty"),
        (
            lambda p: plots.plot_history({"loss": [1.0, 0.5], "val_loss": [1.0]}, p),
            r"one value per epoch; received \{'loss': 2, 'val_loss': 1\}",
        ),
        (lambda p: plots.plot_confusion_matrix(np.ones((3, 4), int), p), r"square.*\(3, 4\)"),
        (lambda p: plots.plot_confusion_matrix(np.eye(3), p), r"integer counts.*float64"),
        (lambda p: plots.plot_confusion_matrix(-np.eye(2, dtype=int), p), r">= 0.*-1"),
        (lambda p: plots.plot_confusion_matrix(np.zeros((2, 2), int), p), r"all zeros"),
        (
            lambda p: plots.plot_confusion_matrix(np.eye(2, dtype=int), p, class_names=["a"]),
            r"class_names must name each of the 2 classes; received 1",
        ),
        (lambda p: plots.plot_digits(np.zeros((2, 783)), [0, 1], [0, 1], p), r"783 pixels"),
        (lambda p: plots.plot_digits(np.zeros((0, 784)), [], [], p), r"shape \(0, 784\)"),
        (
            lambda p: plots.plot_digits(np.zeros((3, 784)), [0, 1, 2], [0, 1], p),
            r"y_pred must hold one label per image, shape \(3,\); received shape \(2,\)",
        ),
        (
            lambda p: plots.plot_digits(np.zeros((2, 4)), [0, 1], [0, 1], p, count=0),
            r"count must be an int >= 1; received count=0",
        ),
    ],
)
def test_bad_input_is_a_one_line_error(call: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises((ValueError, TypeError), match=message) as error:
        call(tmp_path / "x.png")
    assert "\n" not in str(error.value)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------ without matplotlib
def test_fastnn_imports_without_matplotlib() -> None:
    blocked = "import sys; sys.modules['matplotlib'] = None; "
    imports = "import fastnn, fastnn.plots, fastnn.benchmarks.plots, fastnn.cli"
    subprocess.run([sys.executable, "-c", blocked + imports], check=True)


def test_without_matplotlib_each_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # None in sys.modules makes `import` fail; cover submodules another test imported
    for name in [name for name in sys.modules if name.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    images, y_true, y_pred = _digits()
    calls = [
        lambda: plots.plot_history({"loss": [1.0]}, tmp_path / "h.png"),
        lambda: plots.plot_confusion_matrix(np.eye(2, dtype=int), tmp_path / "c.png"),
        lambda: plots.plot_digits(images, y_true, y_pred, tmp_path / "d.png"),
    ]
    for call in calls:
        with pytest.raises(
            ImportError,
            match=r'^fastnn plots .*pip install -e "\.\[plot\]" in the fastnn folder, '
            r"or pip install matplotlib$",
        ):
            call()
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------- CLI
def test_train_plot_writes_the_three_pictures(
    matplotlib: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plots"
    argv = ["train", "--recipe", "scratch", "--epochs", "2", "--seed", "0", "--plot", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    for name in ("training_curves.png", "confusion_matrix.png", "digits.png"):
        assert f"wrote {out / name}\n" in printed
        _pixels(out / name)


def test_train_plot_without_matplotlib_fails_before_training(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(recipes, "run", lambda *args, **kwargs: pytest.fail("trained"))
    with pytest.raises(SystemExit) as refused:  # as a bad option is: usage, status 2
        cli.main(["train", "--plot", str(tmp_path)])
    assert refused.value.code == 2
    assert 'pip install -e ".[plot]" in the fastnn folder' in capsys.readouterr().err
