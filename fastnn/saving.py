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
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from fastnn import losses, optimizers
from fastnn.models import Sequential

FORMAT_VERSION = 1
METADATA_KEY = "fastnn_metadata"


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
            "metrics": list(model.metrics),
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
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)  # type: ignore[arg-type]
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, target)
    except BaseException:
        os.unlink(temp_name)
        raise


def _numbered(files: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    keys = sorted(key for key in files if key.startswith(prefix))
    return [files[key] for key in keys]


def load_model(path: str | os.PathLike[str]) -> Sequential:
    """Rebuild a model saved by :meth:`Sequential.save`, on the active backend."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            files = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"{path} is not a readable fastnn model file: {error}") from error
    if METADATA_KEY not in files:
        raise ValueError(f"{path} is not a fastnn model file (no {METADATA_KEY} entry)")
    try:
        metadata = json.loads(str(files[METADATA_KEY]))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} has unreadable model metadata: {error}") from error
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} uses model format version {version!r}; this fastnn reads versions up to "
            f"{FORMAT_VERSION}. Upgrade fastnn to load it"
        )
    model = Sequential.from_config(metadata["model"])
    input_shape = metadata["model"].get("input_shape")
    if input_shape is not None:
        model.build((None, *input_shape))
        model.set_weights(_numbered(files, "weight_"))
    compiled = metadata.get("compile")
    if compiled:
        model.compile(
            optimizer=optimizers.deserialize(compiled["optimizer"]),
            loss=losses.deserialize(compiled["loss"]),
            metrics=compiled["metrics"],
        )
        state = _numbered(files, "optimizer_")
        if state:
            assert model.optimizer is not None and model.backend is not None
            params = [p for layer in model.layers for p in layer.params.values()]
            model.optimizer.set_state(model.backend, compiled["iterations"], state, params)
        elif model.optimizer is not None:
            model.optimizer.iterations = int(compiled.get("iterations", 0))
    return model
