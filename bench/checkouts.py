"""This checkout against an earlier revision: a script run in fresh processes of each,
alternated, so the machine's drift touches both alike.

The revision is checked out with ``git worktree`` into a temporary folder and run with
``PYTHONPATH`` set to it. ``kernels/`` installs as ``fastnn.kernels`` through the
editable install's mapping, which would hand the other checkout this one's kernels: a
link ``fastnn/kernels -> ../kernels`` in the worktree comes first, and each run reports
where its kernels came from, checked against its checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: appended to every script: the last line it prints names the kernels it imported
_REPORT = """
import fastnn.kernels as _kernels
print(json.dumps({**_result, "kernels": _kernels.__file__}))
"""


def alternate(baseline: str, rounds: int, script: str) -> dict[str, list[dict[str, Any]]]:
    """``script`` (Python that leaves a JSON-able dict in ``_result`` and imports ``json``)
    in ``rounds`` fresh processes of this checkout ("this") and of ``baseline``, in turn,
    the first of each pair swapped every round. Returns each side's results."""
    runs: dict[str, list[dict[str, Any]]] = {"this": [], "baseline": []}
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", folder, baseline],
            check=True, capture_output=True,
        )  # fmt: skip
        (Path(folder) / "fastnn" / "kernels").symlink_to(Path("..") / "kernels")
        try:
            for round_ in range(rounds):
                for which in ("this", "baseline") if round_ % 2 == 0 else ("baseline", "this"):
                    root = ROOT if which == "this" else Path(folder)
                    env = {**os.environ, "PYTHONPATH": str(root)}
                    done = subprocess.run(
                        [sys.executable, "-c", script + _REPORT], cwd=root, env=env,
                        check=True, capture_output=True, text=True,
                    )  # fmt: skip
                    run = json.loads(done.stdout.strip().splitlines()[-1])
                    kernels = Path(run.pop("kernels")).resolve()
                    if not kernels.is_relative_to(root.resolve()):
                        raise RuntimeError(f"the {which} run imported kernels from {kernels}")
                    runs[which].append(run)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", folder], check=False
            )
    return runs
