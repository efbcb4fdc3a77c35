"""fastnn: a from-scratch feedforward network on a pluggable array backend.

Dense layers, ReLU, softmax, cross-entropy and backpropagation written out by hand, with a
Keras-style API, computed by NumPy, by Numba kernels on the CPU, or by CUDA kernels
through CuPy on an NVIDIA GPU.

Quick start::

    import fastnn
    from fastnn.datasets import mnist

    (x_train, y_train), (x_test, y_test) = mnist.load_data()  # uint8 images, int labels
    x_train = x_train.reshape(-1, 784) / 255.0
    x_test = x_test.reshape(-1, 784) / 255.0

    model = fastnn.Sequential([
        fastnn.Input(shape=(784,)),
        fastnn.layers.Dense(512, activation="relu"),
        fastnn.layers.Dense(10, activation="softmax"),
    ], seed=0)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=5, batch_size=128)
    loss, accuracy = model.evaluate(x_test, y_test)
    model.save("mnist.keras")          # Keras 3 reads it; fastnn.load_model reads it back

What to look at next (``help(...)`` on each):

* ``fastnn.Sequential``: ``compile``, ``fit``, ``evaluate``, ``predict``, ``save``,
  ``summary``, ``get_weights`` / ``set_weights``, ``export`` (ONNX).
* ``fastnn.layers`` (Dense, Activation, Dropout, BatchNormalization, Flatten),
  ``fastnn.optimizers``, ``fastnn.losses``, ``fastnn.metrics``, ``fastnn.callbacks``,
  ``fastnn.regularizers``, ``fastnn.initializers``, ``fastnn.utils`` (to_categorical).
* Backends: ``fastnn.available_backends()`` lists them and why one cannot run;
  ``FASTNN_BACKEND=numba`` or ``fastnn.set_backend("numba")`` /
  ``with fastnn.use_backend("numpy"):`` chooses one ("auto": the fastest that runs).
* Errors: ``fastnn.TrainingInterrupted`` (Ctrl-C in ``fit``; the model keeps its last
  finished step), ``fastnn.TrainingDivergedError`` (a NaN or infinite loss),
  ``fastnn.BackendUnavailableError``.

From the shell: ``fastnn train`` trains the Keras tutorial's network on MNIST;
``fastnn backends``; ``fastnn bench``.
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

#: what ``help(fastnn)`` shows and ``from fastnn import *`` brings: the model, the modules
#: and the functions. The error classes, ``BackendInfo`` and the callbacks named here for
#: convenience stay importable from fastnn but are documented where they live.
__all__ = [
    "Input",
    "InputLayer",
    "Sequential",
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
