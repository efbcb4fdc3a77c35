"""Write the ``.keras`` fixtures of tests/test_interop.py with Keras itself.

    KERAS_BACKEND=jax python -m tests.golden.keras_files.make   # needs keras and h5py

* ``trained.keras``: Input(6), Dense(5, relu, L2), BatchNormalization, Dropout,
  Dense(3, softmax), Adam, trained two epochs; ``trained.npz``: inputs and the
  predictions Keras made of them;
* ``lambda.keras``, ``gelu.keras``, ``conv.keras``: what fastnn must refuse by name (a
  Lambda layer, an activation fastnn lacks, a layer fastnn lacks).

Nothing here runs in CI: the files it wrote are committed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 6)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    model = keras.Sequential([
        keras.Input(shape=(6,)),
        keras.layers.Dense(5, activation="relu", kernel_regularizer=keras.regularizers.L2(0.01)),
        keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.25),
        keras.layers.Dense(3, activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["sparse_categorical_accuracy"])  # fmt: skip
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    model.save(HERE / "trained.keras")
    np.savez(HERE / "trained.npz", x=x, y=y, predictions=model.predict(x, verbose=0))
    refused = {
        "lambda": keras.layers.Lambda(lambda t: t * 2),
        "gelu": keras.layers.Dense(3, activation="gelu"),
        "conv": keras.layers.Conv1D(2, 3),
    }
    for name, layer in refused.items():
        shape = (6, 1) if name == "conv" else (6,)
        keras.Sequential([keras.Input(shape=shape), layer]).save(HERE / f"{name}.keras")


if __name__ == "__main__":
    main()
