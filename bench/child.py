"""Measurements that need a Python interpreter of their own.

Some figures only mean something in a fresh process: a peak RSS counts
everything the process ever held, and OpenMP reads its wait policy once, when
it loads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: the checkout's root, so that ``bench`` imports in the child wherever this one runs
ROOT = Path(__file__).resolve().parents[1]


def call_in_child(module: str, call: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run ``bench.<module>.<call>`` in a new interpreter; the JSON result it prints.

    ``env`` is the child's environment (default: this process's).
    """
    code = f"import json; from bench import {module}; print(json.dumps({module}.{call}))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=None if env is None else dict(env),
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.{module}.{call} failed in a child process:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
