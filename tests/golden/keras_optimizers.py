"""Write ``keras_optimizers.json``: what Keras's own optimizers do to a few weights.

    python -m tests.golden.keras_optimizers   # needs keras and one of its backends

Each case starts from fixed weights and applies fixed gradients for a few steps with a
Keras optimizer (float32 variables, as Keras trains); the file keeps the inputs and the
weights Keras ended with, for tests/test_update_rules.py. Nothing here runs in CI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

STEPS = 3
#: the arguments recorded per class, besides those a case sets (clipping, weight decay);
#: the others keep Keras's defaults
ARGUMENTS = {
    "SGD": ("learning_rate", "momentum", "nesterov"),
    "RMSprop": ("learning_rate", "rho", "momentum", "epsilon", "centered"),
    "Adam": ("learning_rate", "beta_1", "beta_2", "epsilon", "amsgrad"),
    "AdamW": ("learning_rate", "weight_decay", "beta_1", "beta_2", "epsilon", "amsgrad"),
}
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("sgd-defaults", "SGD", {}),
    ("sgd-momentum", "SGD", {"learning_rate": 0.05, "momentum": 0.9}),
    ("sgd-nesterov", "SGD", {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True}),
    ("rmsprop-defaults", "RMSprop", {}),
    ("rmsprop-rho", "RMSprop", {"learning_rate": 0.01, "rho": 0.5, "epsilon": 1e-4}),
    ("adam-defaults", "Adam", {}),
    ("adam-betas", "Adam", {"learning_rate": 0.05, "beta_1": 0.5, "beta_2": 0.9, "epsilon": 1e-3}),
    # appended, so that the cases above keep their random numbers
    ("rmsprop-momentum", "RMSprop", {"learning_rate": 0.01, "momentum": 0.9}),
    ("rmsprop-centered", "RMSprop", {"learning_rate": 0.01, "centered": True}),
    (
        "rmsprop-centered-momentum",
        "RMSprop",
        {"learning_rate": 0.02, "rho": 0.8, "momentum": 0.5, "epsilon": 1e-4, "centered": True},
    ),
    # beta_2 = 0.5 lets v fall between steps, where amsgrad's maximum differs from v
    ("adam-amsgrad", "Adam", {"learning_rate": 0.05, "beta_2": 0.5, "amsgrad": True}),
    ("sgd-clipvalue", "SGD", {"learning_rate": 0.1, "clipvalue": 0.3}),
    ("rmsprop-momentum-clipnorm", "RMSprop", {"momentum": 0.5, "clipnorm": 0.5}),
    (
        "adam-amsgrad-global-clipnorm",
        "Adam",
        {"beta_2": 0.5, "amsgrad": True, "global_clipnorm": 0.7},
    ),
    ("adamw", "AdamW", {"learning_rate": 0.01, "weight_decay": 0.1}),
]


def main() -> None:
    import keras

    rng = np.random.default_rng(2024)
    cases = []
    for case_id, class_name, config in CASES:
        initial = [rng.standard_normal((3, 2)).astype(np.float32),
                   rng.standard_normal(2).astype(np.float32)]  # fmt: skip
        gradients = [[rng.standard_normal(w.shape).astype(np.float32) for w in initial]
                     for _ in range(STEPS)]  # fmt: skip
        variables = [keras.Variable(w, dtype="float32") for w in initial]
        optimizer = getattr(keras.optimizers, class_name)(**config)
        for step in gradients:
            tensors = [keras.ops.convert_to_tensor(g) for g in step]
            optimizer.apply_gradients(zip(tensors, variables, strict=True))
        full = {key: value for key, value in optimizer.get_config().items()
                if key in ARGUMENTS[class_name] or key in config}  # fmt: skip
        cases.append(
            {
                "id": case_id,
                "class": class_name,
                "config": {k: float(v) if not isinstance(v, bool) else v for k, v in full.items()},
                "initial": [w.tolist() for w in initial],
                "gradients": [[g.tolist() for g in step] for step in gradients],
                "final": [np.asarray(keras.ops.convert_to_numpy(v)).tolist() for v in variables],
            }
        )
    out = Path(__file__).resolve().parent / "keras_optimizers.json"
    document = {
        "written_by": f"Keras {keras.__version__} on its {keras.backend.backend()} backend",
        "command": "python -m tests.golden.keras_optimizers",
        "cases": cases,
    }
    out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
