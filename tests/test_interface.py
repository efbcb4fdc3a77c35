"""Every backend implements the whole interface, with the interface's signatures."""

from __future__ import annotations

import inspect

import pytest

import fastnn
from fastnn.backends import Backend
from fastnn.backends.numpy_backend import NumpyBackend

from .conftest import backend_params

INTERFACE = {
    name: member
    for name, member in inspect.getmembers(Backend, inspect.isfunction)
    if not name.startswith("_")
}


def test_interface_covers_what_the_network_needs() -> None:
    needed = {
        "asarray", "to_numpy", "empty", "zeros", "synchronize", "random_uniform",
        "random_normal", "take_rows", "matmul", "bias_add", "sum_rows", "relu",
        "relu_backward", "sigmoid", "sigmoid_backward", "tanh", "tanh_backward", "softmax",
        "softmax_backward", "bias_activation", "activation", "activation_backward",
        "sparse_softmax_cross_entropy", "softmax_cross_entropy", "sigmoid_binary_cross_entropy",
        "mean_squared_error", "argmax_rows", "count_argmax_matches", "count_threshold_matches",
        "sgd_update", "momentum_update", "rmsprop_update", "adam_update", "weight_penalty",
        "dropout_mask", "multiply", "batch_norm_forward", "batch_norm_inference",
        "batch_norm_backward", "moving_average_update", "update_confusion",
    }  # fmt: skip
    assert needed <= set(INTERFACE)


def test_reference_backend_implements_every_primitive() -> None:
    assert not getattr(NumpyBackend, "__abstractmethods__", None)
    NumpyBackend()  # instantiable


@pytest.mark.parametrize("name", backend_params())
def test_backend_matches_interface_signatures(name: str) -> None:
    backend = fastnn.get_backend(name)
    assert isinstance(backend, Backend)
    assert backend.name == name
    for method_name, interface_method in INTERFACE.items():
        implementation = getattr(type(backend), method_name)
        assert not getattr(implementation, "__isabstractmethod__", False), method_name
        expected = inspect.signature(interface_method)
        actual = inspect.signature(implementation)
        assert list(actual.parameters) == list(expected.parameters), method_name
        for param_name, param in expected.parameters.items():
            other = actual.parameters[param_name]
            assert other.kind == param.kind, (method_name, param_name)
            assert other.default == param.default, (method_name, param_name)
