"""Saving and loading models as one ``.npz`` file.

The file holds plain arrays only and is read with ``allow_pickle=False``, so
loading a file never runs code from it:

* ``fastnn_metadata``: a JSON string: format version, architecture, compile
  settings and the optimizer's step count;
* ``weight_000``, ``weight_001``, ...: the weights in ``get_weights`` order;
* ``optimizer_000``, ...: the optimizer's slot arrays, when it has any.

Weights are stored as host arrays, so a model saved from one backend loads on
any other.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastnn import losses, optimizers
from fastnn.files import replaced_atomically
from fastnn.validation import check_int

if TYPE_CHECKING:  # pragma: no cover
    from fastnn.models import Sequential

FORMAT_VERSION = 1
METADATA_KEY = "fastnn_metadata"
# the only entries a model or weights file holds (numbered from 000, more digits past 999)
_ENTRY = re.compile(rf"({METADATA_KEY}|weight_\d{{3,}}|optimizer_\d{{3,}})\.npy")


def save_model(model: Sequential, path: str | os.PathLike[str]) -> None:
    """Write ``model`` to ``path`` (must end in ``.npz``), atomically.

    The file is written under a temporary name in the same folder and renamed
    over ``path`` only once complete, so an interrupted save leaves any earlier
    file intact.
    """
    target = Path(path)
    if target.suffix != ".npz":
        raise ValueError(f"model files end in .npz; received path={str(path)!r}")
    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "model": model.get_config(),
        "compile": None,
    }
    arrays: dict[str, np.ndarray] = {}
    if model.built:
        arrays.update({f"weight_{i:03d}": w for i, w in enumerate(model.get_weights())})
    if model.optimizer is not None and model.loss is not None:
        metadata["compile"] = {
            "optimizer": optimizers.serialize(model.optimizer),
            "loss": losses.serialize(model.loss),
            "metrics": model.metrics_names[1:],  # as compile was given them
            "iterations": model.optimizer.iterations,
        }
        if model.backend is not None:
            state = model.optimizer.get_state(model.backend)
            arrays.update({f"optimizer_{i:03d}": a for i, a in enumerate(state)})
    arrays[METADATA_KEY] = np.array(json.dumps(metadata))
    write_npz_atomically(target, arrays)


def write_npz_atomically(target: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` of ``arrays`` to ``target`` under a temporary name in the same folder,
    renamed over ``target`` only once complete: an interrupted write leaves any earlier
    file intact."""
    with replaced_atomically(target) as stream:
        np.savez(stream, **arrays)  # type: ignore[arg-type]


def save_weights(model: Sequential, path: str | os.PathLike[str]) -> None:
    """Write ``model.get_weights()`` to ``path`` (must end in ``.weights.npz``), atomically."""
    target = Path(path)
    if not target.name.endswith(".weights.npz"):
        raise ValueError(f"weights files end in .weights.npz; received path={str(path)!r}")
    write_npz_atomically(target, {f"weight_{i:03d}": w for i, w in enumerate(model.get_weights())})


def load_weights(model: Sequential, path: str | os.PathLike[str]) -> None:
    """Set ``model``'s weights from a ``.weights.npz`` file or a whole-model ``.npz``.

    The file must come from a model of the same architecture: the same number of
    weight arrays, of the same shapes, in the same order. Nothing is changed
    unless every array fits.
    """
    if not model.built:
        raise ValueError(
            "load_weights needs a built model to know the shapes to expect; give the first "
            "layer input_dim= (or input_shape=), or call model.build((None, n_features))"
        )
    files = _read_archive(path)
    weights = _weights(path, files, "weight_")
    expected = [tuple(w.shape) for layer in model.layers for w in layer.weights.values()]
    found = [w.shape for w in weights]
    if found != expected:
        raise ValueError(
            f"{path} holds weights for another architecture: {len(found)} array(s) of shapes "
            f"{_shapes(found)}; this model has {len(expected)}: {_shapes(expected)}"
        )
    model.set_weights(weights)


def _shapes(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join(str(shape) for shape in shapes) or "none"


def _read_archive(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``; never unpickles, never runs code from it."""
    try:
        with zipfile.ZipFile(path) as archive:
            unexpected = [n for n in archive.namelist() if not _ENTRY.fullmatch(n)]
        if not unexpected:
            with np.load(path, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise
    except Exception as error:  # damaged bytes fail in zipfile, zlib, struct or the .npy reader
        raise ValueError(f"{path} is not a readable fastnn model file: {error}") from error
    listed = ", ".join(repr(name) for name in unexpected[:3])
    raise ValueError(f"{path} is not a fastnn model file: it holds entries such as {listed}")


def _weights(
    path: str | os.PathLike[str], files: dict[str, np.ndarray], prefix: str
) -> list[np.ndarray]:
    """The arrays named ``prefix`` + number, in number order, checked to be finite floats."""
    numbered = sorted((int(key[len(prefix) :]), key) for key in files if key.startswith(prefix))
    if [number for number, _ in numbered] != list(range(len(numbered))):
        raise ValueError(f"{path} has a gap in its numbered {prefix}NNN arrays")
    arrays = [files[key] for _, key in numbered]
    for (_, key), array in zip(numbered, arrays, strict=True):
        if array.dtype.kind != "f":
            raise ValueError(f"{path}: {key} holds {array.dtype} values; weights are floats")
        if not np.isfinite(array).all():
            raise ValueError(f"{path}: {key} holds NaN or infinite values; the file is damaged")
    return arrays


def load_model(path: str | os.PathLike[str], model_class: type[Sequential]) -> Sequential:
    """Rebuild a model saved by :meth:`Sequential.save`, on the active backend, as a
    ``model_class`` (the caller names it: this module never imports the models).

    Any damage to the file (truncation, flipped bytes, a crafted description)
    raises a ValueError that names the file; nothing in it is ever executed.
    """
    files = _read_archive(path)
    if METADATA_KEY not in files:
        raise ValueError(f"{path} is not a fastnn model file (no {METADATA_KEY} entry)")
    try:
        metadata = json.loads(str(files[METADATA_KEY]))
    except (json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{path} has unreadable model metadata: {error}") from error
    version = metadata.get("format_version") if isinstance(metadata, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{path} has no valid format_version in its metadata")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses model format version {version}; this fastnn reads versions up to "
            f"{FORMAT_VERSION}. Upgrade fastnn to load it"
        )
    try:
        return _rebuild(path, metadata, files, model_class)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as error:
        # The description names known classes only, but its values are untrusted.
        detail = str(error) if isinstance(error, ValueError) else repr(error)
        raise ValueError(f"{path} describes a model fastnn cannot rebuild: {detail}") from error


def _rebuild(
    path: str | os.PathLike[str],
    metadata: dict[str, Any],
    files: dict[str, np.ndarray],
    model_class: type[Sequential],
) -> Sequential:
    model = model_class.from_config(metadata["model"])
    input_shape = metadata["model"].get("input_shape")
    if input_shape is not None:
        model.build((None, *input_shape))
        model.set_weights(_weights(path, files, "weight_"))
    compiled = metadata.get("compile")
    if compiled:
        model.compile(
            optimizer=optimizers.deserialize(compiled["optimizer"]),
            loss=losses.deserialize(compiled["loss"]),
            metrics=compiled["metrics"],
        )
        state = _weights(path, files, "optimizer_")
        iterations = check_int("iterations", compiled.get("iterations", 0), 0)
        if state:
            if model.optimizer is None or model.backend is None:
                raise ValueError("it holds optimizer state but no input_shape to build the model")
            params, _ = model._trained()
            model.optimizer.set_state(model.backend, iterations, state, params)
        elif model.optimizer is not None:
            model.optimizer.iterations = iterations
    return model
