"""Compute kernels of fastnn, installed as ``fastnn.kernels``.

One module per kernel family: Numba CPU kernels as Python modules here, CUDA
sources in ``cuda/`` (shipped as package data and compiled at run time).
"""
