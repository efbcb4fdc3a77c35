"""CUDA graphs of training steps: a step captured once, then replayed as one launch.

A training step that uses fixed buffers only (``Backend.run_step`` with a key) is run
eagerly once, which compiles its kernels, creates cuBLAS's handle and fills the
workspace, then captured on the backend's own stream and replayed from then on.
``FASTNN_CUDA_GRAPHS=0`` turns this off; a capture that fails turns it off for the
backend, with a warning naming why, and training goes on eagerly.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Hashable
from typing import Any

from fastnn.config import switch

GRAPHS_VAR = "FASTNN_CUDA_GRAPHS"


def graphs_wanted() -> bool:
    """``FASTNN_CUDA_GRAPHS``: unset or 1 replays training steps as CUDA graphs; 0 does not."""
    wanted = switch(GRAPHS_VAR)
    if wanted is not None:
        return wanted
    value = os.environ[GRAPHS_VAR].strip().lower()
    raise ValueError(f"{GRAPHS_VAR}={value!r} is not understood; use 1 (on) or 0 (off)")


class StepGraphs:
    """Training steps replayed as CUDA graphs, by their key.

    The first run of a key is eager: it compiles the kernels, creates cuBLAS's handle and
    fills the workspace, so the second run, captured, allocates nothing. The captured
    graph runs the step at once and every later one. A capture that fails turns graphs
    off for this backend, with a warning naming why; training goes on eagerly.
    """

    LIMIT = 8  # keys kept: the full and the last, partial batch of a few fits

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.graphs: dict[Hashable, Any] = {}  # key -> graph, or None once warmed up
        self.captures = 0
        self.replays = 0
        self.failure: str | None = None

    def status(self) -> dict[str, Any]:
        return {
            "enabled": graphs_wanted() and self.failure is None,
            "captures": self.captures,
            "replays": self.replays,
            "failure": self.failure,
        }

    def run(self, step: Callable[[], None], key: Hashable | None) -> None:
        backend = self.backend
        stream = backend.xp.cuda.get_current_stream()
        if (
            key is None
            or self.failure is not None
            or stream is not backend._stream  # capture needs the backend's own stream
            or not graphs_wanted()
        ):
            step()
            return
        if key not in self.graphs:
            step()  # warm-up
            if len(self.graphs) >= self.LIMIT:
                self.graphs.pop(next(iter(self.graphs)))
            self.graphs[key] = None
            return
        graph = self.graphs[key]
        if graph is None:
            graph = self._capture(step, stream)
            if graph is None:
                return
            self.graphs[key] = graph
            self.captures += 1
        graph.launch(stream)
        self.replays += 1

    def _capture(self, step: Callable[[], None], stream: Any) -> Any:
        """The graph of ``step``, or None (after running it eagerly) when capture fails."""
        try:
            stream.begin_capture()
            try:
                step()
            finally:
                graph = stream.end_capture()
        except Exception as error:
            self.failure = f"{type(error).__name__}: {error}"
            warnings.warn(
                f"CUDA graph capture of a training step failed ({self.failure}); "
                "training goes on without graphs",
                RuntimeWarning,
                stacklevel=4,
            )
            step()
            return None
        return graph
