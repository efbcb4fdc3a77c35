"""A model as an ONNX graph (``model.export("m.onnx")``), for onnxruntime and the tools
that read ONNX.

Each layer becomes the standard operators of its inference pass: Dense a ``Gemm`` (a
``MatMul`` without bias) then its activation, Activation ``Relu`` / ``Sigmoid`` /
``Tanh`` / ``Softmax``, BatchNormalization ``BatchNormalization`` with the moving
statistics, Flatten ``Flatten``; Dropout, the identity at inference, adds nothing. The
weights are the graph's initializers, in the model's dtype; the batch axis is named
``batch`` and left free. The onnx package is an optional extra (``.[onnx]``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastnn.extras import install_hint
from fastnn.files import replaced_atomically
from fastnn.layers import Activation, BatchNormalization, Dense, Dropout, Flatten, Layer

if TYPE_CHECKING:  # pragma: no cover
    from fastnn.models import Sequential

OPSET = 17
_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as error:
        raise ImportError(
            f"exporting to ONNX needs the onnx package: {install_hint('onnx', 'onnx')}"
        ) from error
    return onnx


class _Graph:
    """The nodes and initializers being built, and the name of the current output."""

    def __init__(self, onnx: Any) -> None:
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.current = "input"

    def weight(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attributes: Any) -> None:
        self.nodes.append(
            self.helper.make_node(op, [self.current, *inputs], [name], name=name, **attributes)
        )
        self.current = name

    def activation(self, activation: str, name: str) -> None:
        if activation == "softmax":
            self.node("Softmax", [], name, axis=-1)
        elif activation != "linear":
            self.node(_ACTIVATIONS[activation], [], name)


def _add_layer(graph: _Graph, layer: Layer) -> None:
    weights = dict(zip(layer.weights, layer.get_weights(), strict=True))
    name = str(layer.name)
    if isinstance(layer, Dense):
        kernel = graph.weight(f"{name}/kernel", weights["kernel"])
        if layer.use_bias:
            graph.node("Gemm", [kernel, graph.weight(f"{name}/bias", weights["bias"])], name)
        else:
            graph.node("MatMul", [kernel], name)
        graph.activation(layer.activation, f"{name}/{layer.activation}")
    elif isinstance(layer, Activation):
        graph.activation(layer.activation, name)
    elif isinstance(layer, BatchNormalization):
        inputs = [graph.weight(f"{name}/{key}", weights[key])
                  for key in ("gamma", "beta", "moving_mean", "moving_variance")]  # fmt: skip
        graph.node("BatchNormalization", inputs, name, epsilon=float(layer.epsilon))
    elif isinstance(layer, Flatten):
        graph.node("Flatten", [], name, axis=1)
    elif not isinstance(layer, Dropout):  # pragma: no cover - every layer fastnn has is above
        raise TypeError(f"layer {name!r} of type {type(layer).__name__} has no ONNX form")


def export_onnx(model: Sequential, path: str | os.PathLike[str]) -> None:
    """Write ``model``'s inference pass to ``path`` as an ONNX model (checked by
    ``onnx.checker`` before it is written, atomically)."""
    onnx = _onnx()
    model._ensure_built()
    assert model.dtype is not None
    graph = _Graph(onnx)
    for layer in model.layers:
        _add_layer(graph, layer)
    if graph.current == "input":  # only identities: still a graph with an output
        graph.node("Identity", [], "output")
    element = onnx.helper.np_dtype_to_tensor_dtype(model.dtype)
    sample = model._declared_input_shape() or ()
    proto = onnx.helper.make_model(
        onnx.helper.make_graph(
            graph.nodes, model.name,
            [onnx.helper.make_tensor_value_info("input", element, ["batch", *sample])],
            [onnx.helper.make_tensor_value_info(graph.current, element,
                                                ["batch", *(model.layers[-1].sample_out or ())])],
            graph.initializers,
        ),
        opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="fastnn",
    )  # fmt: skip
    onnx.checker.check_model(proto, full_check=True)
    with replaced_atomically(Path(path)) as stream:
        stream.write(proto.SerializeToString())
