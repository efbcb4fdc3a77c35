"""Benchmarks: the workloads, the peers, the suite behind ``fastnn bench``, its reports.

``timing`` (medians after warm-up, interleaved rounds), ``workloads`` (ops, a keras
epoch, the GEMM floor, training steps), ``peers`` (the same network in plain NumPy,
PyTorch, JAX and Keras 3), ``suite`` (runs them, rows of results), ``report`` (text
and Markdown) and ``plots`` (PNG charts, with the [plot] extra).
"""
