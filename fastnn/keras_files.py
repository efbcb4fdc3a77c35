"""Keras 3's ``.keras`` archive, written and read: models move between fastnn and Keras.

The archive is a zip of ``config.json`` (the model's description, Keras's JSON),
``model.weights.h5`` (the weights, HDF5: ``layers/<snake_case class>[_k]/vars/<i>``,
numbered per class in model order, each group naming its layer) and ``metadata.json``.

Reading parses JSON and HDF5 only: it never runs code from the file. A file made of the
layers fastnn has (Dense, Activation, Dropout, BatchNormalization, Flatten, InputLayer)
with activations, regularizers, optimizers and losses fastnn has is rebuilt; anything
else (a Lambda layer, a custom object, an unknown activation, an option fastnn lacks)
is refused by name. h5py is an optional extra (``pip install -e ".[keras]"``).
"""

from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastnn import losses, optimizers, regularizers
from fastnn.extras import install_hint
from fastnn.files import replaced_atomically
from fastnn.layers import (
    Activation,
    BatchNormalization,
    Dense,
    Dropout,
    Flatten,
    Layer,
    snake_case,
)

if TYPE_CHECKING:  # pragma: no cover
    from fastnn.models import Sequential

#: the Keras saving format written (Keras 3's), in metadata.json
FORMAT = "3.0.0"
#: Keras's layer options whose default is the only value fastnn has: (option, default)
_FIXED: dict[str, dict[str, Any]] = {
    "Dense": {"kernel_constraint": None, "bias_constraint": None, "activity_regularizer": None,
              "lora_rank": None, "quantization_config": None},
    "BatchNormalization": {"axis": -1, "center": True, "scale": True, "synchronized": False,
                           "renorm": False, "beta_regularizer": None, "gamma_regularizer": None,
                           "beta_constraint": None, "gamma_constraint": None},
    "Dropout": {"noise_shape": None},
    "Flatten": {"data_format": None},
}  # fmt: skip
_OPTIMIZER_FIXED: dict[str, Any] = {"use_ema": False, "loss_scale_factor": None,
                    "gradient_accumulation_steps": None}  # fmt: skip


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as error:
        raise ImportError(f".keras files need h5py: {install_hint('keras', 'h5py')}") from error
    return h5py


def _object(module: str, class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


# ------------------------------------------------------------------- writing
def _layer_config(layer: Layer, dtype: str) -> dict[str, Any]:
    config: dict[str, Any] = {"name": layer.name, "trainable": layer.trainable, "dtype": dtype}
    if isinstance(layer, Dense):
        regularizer = {
            f"{key}_regularizer": None if rule is None else _object(
                "keras.regularizers", "L1L2", {"l1": rule.l1, "l2": rule.l2})
            for key, rule in layer.regularizers.items()
        }  # fmt: skip
        config |= {
            "units": layer.units, "activation": layer.activation, "use_bias": layer.use_bias,
            "kernel_initializer": _initializer(layer.kernel_initializer),
            "bias_initializer": _initializer(layer.bias_initializer), **regularizer,
        }  # fmt: skip
    elif isinstance(layer, Activation):
        config["activation"] = layer.activation
    elif isinstance(layer, Dropout):
        config |= {"rate": layer.rate, "seed": layer.seed}
    elif isinstance(layer, BatchNormalization):
        config |= {"momentum": layer.momentum, "epsilon": layer.epsilon}
    entry = _object("keras.layers", type(layer).__name__, config)
    entry["build_config"] = {"input_shape": [None, *(layer.sample_in or ())]}
    return entry


def _initializer(initializer: Any) -> dict[str, Any]:
    # fastnn's initializers have Keras's class names and arguments; the random ones a seed
    config = initializer.get_config()
    if type(initializer).__name__ not in ("Zeros", "Ones"):
        config = {**config, "seed": None}
    return _object("keras.initializers", type(initializer).__name__, config)


def _compile_config(model: Sequential) -> dict[str, Any] | None:
    if model.optimizer is None or model.loss is None:
        return None
    optimizer = model.optimizer
    loss = model.loss
    loss_entry: Any = loss.name
    if loss.get_config():
        loss_entry = _object("keras.losses", type(loss).__name__, loss.get_config())
    return {
        "optimizer": _object("keras.optimizers", type(optimizer).__name__,
                             {"name": type(optimizer).__name__.lower(),
                              **optimizer.get_config()}),
        "loss": loss_entry, "loss_weights": None, "metrics": model.metrics_names[1:],
        "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
        "jit_compile": False,
    }  # fmt: skip


def write_keras(model: Sequential, path: str | os.PathLike[str]) -> None:
    """``model`` (built) as a Keras 3 ``.keras`` archive at ``path``, written atomically."""
    h5py = _h5py()
    model._ensure_built()
    assert model.dtype is not None
    dtype = model.dtype.name
    shape = [None, *(model._declared_input_shape() or ())]
    input_layer = _object("keras.layers", "InputLayer",
                          {"batch_shape": shape, "dtype": dtype, "sparse": False,
                           "name": "input_layer"})  # fmt: skip
    config = _object("keras", "Sequential", {
        "name": model.name, "trainable": True, "dtype": dtype,
        "layers": [input_layer, *(_layer_config(layer, dtype) for layer in model.layers)],
        "build_input_shape": shape,
    })  # fmt: skip
    config["build_config"] = {"input_shape": shape}
    config["compile_config"] = _compile_config(model)
    weights = io.BytesIO()
    with h5py.File(weights, "w") as store:
        store.create_group("vars").attrs["name"] = model.name
        used: dict[str, int] = {}
        for layer in model.layers:
            group = store.create_group(f"layers/{_unique(type(layer).__name__, used)}/vars")
            group.attrs["name"] = layer.name
            for i, array in enumerate(layer.get_weights()):
                group.create_dataset(str(i), data=array)
        if model.optimizer is not None:
            group = store.create_group("optimizer/vars")
            group.attrs["name"] = type(model.optimizer).__name__.lower()
            for i, array in enumerate(_optimizer_variables(model)):
                group.create_dataset(str(i), data=array)
    metadata = {"keras_version": FORMAT, "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S"),
                "written_by": "fastnn"}  # fmt: skip
    with replaced_atomically(Path(path)) as stream, zipfile.ZipFile(stream, "w") as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights.getvalue())


def _optimizer_variables(model: Sequential) -> list[np.ndarray]:
    """Keras's optimizer variables: the step count, the learning rate, then each trainable
    weight's slots in Keras's order (``Optimizer.state_order``: Adam's momentum and
    velocity weight by weight, then amsgrad's velocity_hat; RMSprop's velocities, then
    momentums, then average gradients), which are fastnn's (the same update rules);
    zeros for an optimizer that has not stepped yet."""
    optimizer, backend = model.optimizer, model.backend
    assert optimizer is not None and backend is not None
    params, _ = model._trained()
    slots = optimizer.get_state(backend) or [
        np.zeros(params[i].shape, model.dtype) for i, _ in optimizer.state_order(len(params))
    ]
    count = np.array(optimizer.iterations, np.int64)
    return [count, np.array(optimizer.learning_rate, np.float32), *slots]


def _restore_optimizer(model: Sequential, group: Any) -> None:
    """The step count, rate and slots of Keras's optimizer variables; a Keras optimizer
    saved before it stepped has the first two only."""
    optimizer, backend = model.optimizer, model.backend
    assert optimizer is not None and backend is not None
    arrays = [np.asarray(group[str(i)]) for i in range(len(group))]
    if len(arrays) < 2:
        return
    params, _ = model._trained()
    slots = arrays[2:]
    if slots and len(slots) != len(params) * len(optimizer.slot_names):
        raise _refuse(f"optimizer state of {len(slots)} arrays for {len(params)} weights")
    optimizer.set_state(backend, int(arrays[0]), slots, params if slots else [])
    # the rate as the optimizer's config gives it, unless a schedule or callback changed it
    # (the variable holds it in float32 only)
    if np.float32(optimizer.learning_rate) != np.float32(arrays[1]):
        optimizer.learning_rate = float(arrays[1])


def _unique(class_name: str, used: dict[str, int]) -> str:
    """Keras's path for the next saveable of a class: ``dense``, ``dense_1``, ..."""
    base = snake_case(class_name)
    count = used.get(base, 0)
    used[base] = count + 1
    return base if count == 0 else f"{base}_{count}"


# ------------------------------------------------------------------- reading
class _Refused(ValueError):
    pass


def _refuse(what: str) -> _Refused:
    return _Refused(what)


def _name_of(entry: Any, kind: str) -> str:
    """The class name of a Keras config entry, refusing custom (registered) objects."""
    if isinstance(entry, str):
        return entry
    if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
        raise _refuse(f"a {kind} described as {entry!r}")
    if entry.get("registered_name") not in (None, entry["class_name"]):
        raise _refuse(f"the custom {kind} {entry['registered_name']!r}")
    if entry.get("module", "keras").split(".")[0] != "keras":
        raise _refuse(f"the {kind} {entry['class_name']!r} of module {entry.get('module')!r}")
    return str(entry["class_name"])


def _check_fixed(kind: str, config: dict[str, Any], fixed: dict[str, Any]) -> None:
    for option, default in fixed.items():
        if config.get(option, default) != default:
            raise _refuse(f"{kind} with {option}={config[option]!r} (fastnn has {default!r} only)")


def _regularizer(entry: Any) -> regularizers.L1L2 | None:
    if entry is None:
        return None
    name = _name_of(entry, "regularizer")
    config = entry.get("config", {}) if isinstance(entry, dict) else {}
    factors = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}.get(name)
    if factors is None:
        raise _refuse(f"the regularizer {name!r}")
    return regularizers.L1L2(**{key: float(config.get(key, 0.0)) for key in factors})


def _activation(value: Any) -> str:
    name = _name_of(value, "activation")
    if name not in ("linear", "relu", "sigmoid", "tanh", "softmax", None):
        raise _refuse(f"the activation {name!r}")
    return name


def _layer(entry: dict[str, Any]) -> Layer | None:
    """A fastnn layer for a Keras layer entry (None for an InputLayer)."""
    class_name = _name_of(entry, "layer")
    config = entry.get("config", {})
    if class_name == "InputLayer":
        return None
    layer = _new_layer(class_name, config)
    layer.trainable = bool(config.get("trainable", True))
    return layer


def _new_layer(class_name: str, config: dict[str, Any]) -> Layer:
    _check_fixed(class_name, config, _FIXED.get(class_name, {}))
    name = config.get("name")
    if class_name == "Dense":
        return Dense(
            int(config["units"]), _activation(config.get("activation", "linear")),
            use_bias=bool(config.get("use_bias", True)),
            kernel_regularizer=_regularizer(config.get("kernel_regularizer")),
            bias_regularizer=_regularizer(config.get("bias_regularizer")), name=name,
        )  # fmt: skip
    if class_name == "Activation":
        return Activation(_activation(config["activation"]), name=name)
    if class_name == "Dropout":
        return Dropout(float(config["rate"]), seed=config.get("seed"), name=name)
    if class_name == "BatchNormalization":
        return BatchNormalization(
            momentum=float(config.get("momentum", 0.99)),
            epsilon=float(config.get("epsilon", 1e-3)), name=name,
        )  # fmt: skip
    if class_name == "Flatten":
        return Flatten(name=name)
    raise _refuse(f"the layer {class_name!r} (fastnn has Dense, Activation, Dropout, "
                  "BatchNormalization, Flatten, InputLayer)")  # fmt: skip


def _dtype(value: Any) -> str:
    name = value if isinstance(value, str) else (value or {}).get("config", {}).get("name")
    if name not in ("float32", "float64"):
        raise _refuse(f"dtype {name!r} (fastnn computes in float32 or float64)")
    return str(name)


def _input_shape(config: dict[str, Any], entries: list[dict[str, Any]]) -> list[int] | None:
    for entry in entries:
        if entry.get("class_name") == "InputLayer":
            shape = entry["config"].get("batch_shape") or entry["config"].get("batch_input_shape")
            return list(shape[1:])
    shape = config.get("build_input_shape")
    return None if shape is None else list(shape[1:])


def _compile(model: Sequential, compiled: dict[str, Any]) -> None:
    entry = compiled["optimizer"]
    class_name = _name_of(entry, "optimizer")
    if class_name not in ("SGD", "RMSprop", "Adam", "AdamW"):
        raise _refuse(f"the optimizer {class_name!r}")
    config = entry.get("config", {}) if isinstance(entry, dict) else {}
    _check_fixed(class_name, config, _OPTIMIZER_FIXED)
    known = {"SGD": ("learning_rate", "momentum", "nesterov"),
             "RMSprop": ("learning_rate", "rho", "momentum", "epsilon", "centered"),
             "Adam": ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad"),
             "AdamW": ("learning_rate", "beta_1", "beta_2", "epsilon",
                       "amsgrad")}[class_name]  # fmt: skip
    options = (*known, *optimizers.CLIPPING, "weight_decay")
    arguments = {key: config[key] for key in options if key in config}
    if not isinstance(arguments.get("learning_rate", 0.0), (int, float)):
        raise _refuse(f"a learning-rate schedule ({arguments['learning_rate']!r})")
    optimizer = optimizers.deserialize({"class_name": class_name, "config": arguments})
    loss_entry = compiled["loss"]
    loss_name = _name_of(loss_entry, "loss")
    loss: Any = loss_name
    if isinstance(loss_entry, dict):
        by_class = {cls.__name__: cls for cls in losses._CLASSES.values()}
        if loss_name not in by_class:
            raise _refuse(f"the loss {loss_name!r}")
        cls = by_class[loss_name]
        loss = cls(
            **(
                {}
                if cls is losses.MeanSquaredError
                else {"from_logits": bool(loss_entry.get("config", {}).get("from_logits"))}
            )
        )
    metrics = [_name_of(metric, "metric") for metric in compiled.get("metrics") or []]
    model.compile(optimizer=optimizer, loss=loss, metrics=[snake_case(m) if m[0].isupper()
                                                           else m for m in metrics])  # fmt: skip


def read_keras(path: str | os.PathLike[str], model_class: type[Sequential]) -> Sequential:
    """The model of a Keras 3 ``.keras`` archive, rebuilt as a ``model_class`` on the active
    backend; refused (ValueError naming what) when it holds something fastnn lacks."""
    h5py = _h5py()
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable .keras file: {error}") from error
    try:
        if _name_of(config, "model") != "Sequential":
            raise _refuse(f"a {config.get('class_name')!r} model (fastnn reads Sequential ones)")
        inner = config["config"]
        entries = list(inner["layers"])
        built = [layer for layer in map(_layer, entries) if layer is not None]
        model = model_class(built, name=inner.get("name"), dtype=_dtype(inner.get("dtype")))
        shape = _input_shape(inner, entries)
        if shape is None:
            raise _refuse("a model with no input shape (never built in Keras)")
        model.build((None, *shape))
        with h5py.File(io.BytesIO(weights), "r") as store:
            used: dict[str, int] = {}
            for layer in model.layers:
                group = store[f"layers/{_unique(type(layer).__name__, used)}/vars"]
                layer.set_weights([np.asarray(group[str(i)]) for i in range(len(group))])
            compiled = config.get("compile_config") or inner.get("compile_config")
            if compiled:
                _compile(model, compiled)
                if "optimizer/vars" in store:
                    _restore_optimizer(model, store["optimizer/vars"])
    except _Refused as refusal:
        raise ValueError(f"{path} holds {refusal}; fastnn cannot read it") from None
    except (KeyError, TypeError, IndexError) as error:
        raise ValueError(f"{path} describes a model fastnn cannot rebuild: {error!r}") from error
    return model
