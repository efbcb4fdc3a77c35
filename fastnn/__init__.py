"""fastnn: a from-scratch feedforward network on a pluggable array backend.

    import fastnn
    model = fastnn.Sequential([
        fastnn.layers.Dense(512, activation="relu"),
        fastnn.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=5, batch_size=128)

The backend (numpy, numba or cupy) is chosen by ``FASTNN_BACKEND`` or in code
with ``fastnn.set_backend`` / ``fastnn.use_backend``.
"""

import importlib.util
import sys
from pathlib import Path


def _kernels_from_a_checkout() -> None:
    """Make the repository's ``kernels/`` importable as ``fastnn.kernels`` when fastnn runs
    from a checkout that was never installed (``python -m fastnn`` from its root, as
    ``bench/gpu_check.sh`` does): an install maps the folder there itself."""
    if importlib.util.find_spec("fastnn.kernels") is not None:
        return
    folder = Path(__file__).resolve().parent.parent / "kernels"
    spec = importlib.util.spec_from_file_location(
        "fastnn.kernels", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None or not (folder / "__init__.py").is_file():
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["fastnn.kernels"] = module
    spec.loader.exec_module(module)
    globals()["kernels"] = module  # as the import system sets a submodule on its parent


_kernels_from_a_checkout()

from fastnn import (  # noqa: E402  (after the kernels are reachable)
    callbacks,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    ops,
    optimizers,
    regularizers,
    utils,
)
from fastnn.backends import (  # noqa: E402
    BackendInfo,
    BackendUnavailableError,
    available_backends,
    backend_name,
    get_backend,
    set_backend,
    use_backend,
)
from fastnn.callbacks import (  # noqa: E402
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)
from fastnn.config import set_random_seed  # noqa: E402
from fastnn.interrupts import TrainingInterrupted  # noqa: E402
from fastnn.layers import Input, InputLayer  # noqa: E402
from fastnn.models import Sequential, load_model  # noqa: E402
from fastnn.threads import set_threads  # noqa: E402
from fastnn.training import TrainingDivergedError  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BackendInfo",
    "BackendUnavailableError",
    "EarlyStopping",
    "Input",
    "InputLayer",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "Sequential",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "available_backends",
    "backend_name",
    "callbacks",
    "datasets",
    "get_backend",
    "initializers",
    "layers",
    "load_model",
    "losses",
    "metrics",
    "ops",
    "optimizers",
    "regularizers",
    "set_backend",
    "set_random_seed",
    "set_threads",
    "use_backend",
    "utils",
]
