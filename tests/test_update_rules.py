"""Each optimizer, on every backend, against its update rule computed here a second way.

The backends share code with the NumPy reference (Adam's bias-corrected step size, for
one), so agreeing with it proves nothing of that code. Here each rule is written from its
textbook form in float64 (Adam through its bias-corrected moments, not through the step
size the backends use), and the optimizers are run as training runs them: the optimizer
object, several steps, every weight in one ``apply``. The golden values in
``golden/keras_optimizers.json`` were written by Keras itself
(``python -m tests.golden.keras_optimizers``), for its own rules and defaults.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastnn
from fastnn import optimizers

from .conftest import OTHER_BACKENDS, backend_params
from .reference import same_as_numpy

GOLDEN = Path(__file__).resolve().parent / "golden" / "keras_optimizers.json"
STEPS = 4


def textbook(
    rule: str, config: dict[str, Any], w: np.ndarray, grads: list[np.ndarray]
) -> np.ndarray:
    """The weights after one step per gradient, from the rule's definition, in float64."""
    w = w.astype(np.float64).copy()
    lr = config["learning_rate"]
    first = np.zeros_like(w)
    second = np.zeros_like(w)
    third = np.zeros_like(w)  # RMSprop's moving average of g; AMSGrad's largest second
    for t, grad in enumerate(grads, start=1):
        g = grad.astype(np.float64)
        if rule == "SGD" and config.get("momentum", 0.0) == 0.0:
            w = w - lr * g
        elif rule == "SGD":  # Keras: v = mu v - lr g; w += v, or w += mu v - lr g (Nesterov)
            mu = config["momentum"]
            first = mu * first - lr * g
            w = w + (mu * first - lr * g if config["nesterov"] else first)
        elif rule == "RMSprop":  # epsilon inside the root, as Keras has it
            rho, mu = config["rho"], config.get("momentum", 0.0)
            second = rho * second + (1 - rho) * g * g
            variance = second
            if config.get("centered"):  # E[g^2] - E[g]^2
                third = rho * third + (1 - rho) * g
                variance = second - third * third
            step = lr * g / np.sqrt(variance + config["epsilon"])
            first = mu * first + step  # with momentum 0, the step itself
            w = w - first
        else:  # Adam through bias-corrected moments; Keras's epsilon-hat = eps sqrt(1 - b2^t)
            b1, b2, eps = config["beta_1"], config["beta_2"], config["epsilon"]
            first = b1 * first + (1 - b1) * g
            second = b2 * second + (1 - b2) * g * g
            third = np.maximum(third, second) if config.get("amsgrad") else second
            m_hat = first / (1 - b1**t)
            v_hat = third / (1 - b2**t)
            w = w - lr * m_hat / (np.sqrt(v_hat) + eps / np.sqrt(1 - b2**t))
    return w


CONFIGS = {
    "sgd": ("SGD", {"learning_rate": 0.1}),
    "momentum": ("SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": False}),
    "nesterov": ("SGD", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    "rmsprop": ("RMSprop", {"learning_rate": 0.01, "rho": 0.8, "epsilon": 1e-6}),
    "rmsprop-momentum": (
        "RMSprop",
        {"learning_rate": 0.01, "rho": 0.8, "epsilon": 1e-6, "momentum": 0.7},
    ),
    "rmsprop-centered": (
        "RMSprop",
        {"learning_rate": 0.01, "rho": 0.8, "epsilon": 1e-6, "centered": True},
    ),
    "rmsprop-centered-momentum": (
        "RMSprop",
        {"learning_rate": 0.01, "rho": 0.8, "epsilon": 1e-6, "momentum": 0.7, "centered": True},
    ),
    "adam": ("Adam", {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-6}),
    # beta_2 = 0.3: v falls between steps often, where the maximum differs from v
    "amsgrad": (
        "Adam",
        {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.3, "epsilon": 1e-6, "amsgrad": True},
    ),
}


def _run(name: str, rule: str, config: dict[str, Any], w0: list[np.ndarray],
         grads: list[list[np.ndarray]], dtype: Any) -> list[np.ndarray]:  # fmt: skip
    """Weights after applying ``grads`` (one list per step) with the fastnn optimizer."""
    backend = fastnn.get_backend(name)
    optimizer = getattr(optimizers, rule)(**config)
    params = [backend.asarray(w.astype(dtype)) for w in w0]
    for step in grads:
        optimizer.apply(backend, params, [backend.asarray(g.astype(dtype)) for g in step])
    assert optimizer.iterations == len(grads)
    return [np.asarray(backend.to_numpy(p), dtype=np.float64) for p in params]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("optimizer", sorted(CONFIGS))
@pytest.mark.parametrize("name", backend_params())
def test_optimizers_follow_their_rules(name: str, optimizer: str, dtype: Any) -> None:
    rule, config = CONFIGS[optimizer]
    rng = np.random.default_rng(7)
    w0 = [rng.standard_normal((4, 3)), rng.standard_normal(3)]  # a kernel and a bias
    grads = [[rng.standard_normal(w.shape) for w in w0] for _ in range(STEPS)]
    got = _run(name, rule, config, w0, grads, dtype)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    for i, (g, w) in enumerate(zip(got, w0, strict=True)):
        want = textbook(rule, config, w, [step[i] for step in grads])
        np.testing.assert_allclose(g, want, rtol=rtol, atol=rtol, err_msg=f"weight {i}")


def _golden() -> list[dict[str, Any]]:
    with GOLDEN.open() as file:
        cases: list[dict[str, Any]] = json.load(file)["cases"]
    return cases


@pytest.mark.parametrize("name", backend_params())
@pytest.mark.parametrize("case", _golden(), ids=lambda case: case["id"])
def test_optimizers_match_keras_itself(name: str, case: dict[str, Any]) -> None:
    """Weights Keras's own optimizers produced from these gradients (float32, as Keras
    trains), with Keras's defaults except where the case sets an argument."""
    w0 = [np.array(w) for w in case["initial"]]
    grads = [[np.array(g) for g in step] for step in case["gradients"]]
    got = _run(name, case["class"], case["config"], w0, grads, np.float32)
    for g, want in zip(got, case["final"], strict=True):
        np.testing.assert_allclose(g, np.array(want), rtol=1e-5, atol=1e-6)


#: each rule's kernel, in each of its forms
RULES: dict[str, Callable[..., optimizers.Optimizer]] = {
    "sgd": lambda **adjust: optimizers.SGD(0.1, **adjust),
    "nesterov": lambda **adjust: optimizers.SGD(0.1, momentum=0.9, nesterov=True, **adjust),
    "rmsprop": lambda **adjust: optimizers.RMSprop(0.01, **adjust),
    "rmsprop-momentum-centered": lambda **adjust: optimizers.RMSprop(
        0.01, momentum=0.5, centered=True, **adjust
    ),
    "amsgrad": lambda **adjust: optimizers.Adam(0.01, beta_2=0.5, amsgrad=True, **adjust),
}
ADJUSTMENTS = {
    "clipnorm": {"clipnorm": 0.5},
    "clipvalue-decay": {"clipvalue": 0.01, "weight_decay": 0.1},
    "global-clipnorm": {"global_clipnorm": 0.3},
    "decay": {"weight_decay": 0.1},
}


def _gradients(kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    """A kernel's (20, 30) and a bias's (30,) gradient: ``zero-blocks`` has its first 300
    kernel entries 0 (whole blocks that RMSprop's kernel skips), ``nan`` and ``inf`` one
    such entry, which makes a norm, and so every clipped gradient, NaN."""
    grads = [rng.standard_normal((20, 30)), rng.standard_normal(30)]
    if kind == "zero-blocks":
        grads[0].reshape(-1)[:300] = 0.0
    elif kind in ("nan", "inf"):
        grads[1][3] = np.nan if kind == "nan" else np.inf
    return grads


@pytest.mark.parametrize("kind", ["normal", "zero-blocks", "nan", "inf"])
@pytest.mark.parametrize("adjust", sorted(ADJUSTMENTS))
@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("name", backend_params(OTHER_BACKENDS))
def test_clipping_and_decay_fused_into_the_update_match_the_reference(
    name: str, rule: str, adjust: str, kind: str
) -> None:
    """The kernels clip and decay inside the update; the reference does it in passes of
    its own first. Two steps, so that state written by the first is read by the second."""
    rng = np.random.default_rng(11)
    weights = [rng.standard_normal((20, 30)), rng.standard_normal(30)]
    steps = [_gradients(kind, rng) for _ in range(2)]

    def run(backend: Any) -> list[Any]:
        optimizer = RULES[rule](**ADJUSTMENTS[adjust])
        params = [backend.asarray(w.copy()) for w in weights]
        for grads in steps:
            optimizer.apply(backend, params, [backend.asarray(g.copy()) for g in grads])
        return [*params, *optimizer.get_state(backend)]

    same_as_numpy(name, run)
