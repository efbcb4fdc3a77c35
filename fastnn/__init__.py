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

from fastnn import (
    callbacks,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    ops,
    optimizers,
    regularizers,
)
from fastnn.backends import (
    BackendInfo,
    BackendUnavailableError,
    available_backends,
    backend_name,
    get_backend,
    set_backend,
    use_backend,
)
from fastnn.callbacks import (
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
    ReduceLROnPlateau,
)
from fastnn.config import set_random_seed
from fastnn.interrupts import TrainingInterrupted
from fastnn.models import Sequential
from fastnn.saving import load_model
from fastnn.training import TrainingDivergedError

__version__ = "0.1.0"

__all__ = [
    "BackendInfo",
    "BackendUnavailableError",
    "EarlyStopping",
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
    "use_backend",
]
