"""Would the tests catch a broken kernel? A mutation check, run on demand (not in CI).

    python -m bench.mutants [--only NAME ...] [--tests PATH ...]

Each mutant is one small edit that breaks the code the way a slip would (a flipped sign,
a guard dropped, a bound off by one). It is applied to a copy of the checkout, the
non-slow tests run on the copy (stopping at the first failure, the CI hypothesis profile),
and the edit is undone. A mutant is caught when a test fails; the table says by which.
Every mutant listed here must be caught: one that is not is a hole in the tests.

The copy runs without the editable install's path mapping, so the tests import the
copy's (mutated) code; numba's cache is the copy's own, so the first mutant compiles.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the checkout
    old: str  # must appear exactly once
    new: str


MUTANTS = (
    Mutant("rmsprop update's sign flipped", "kernels/optimizers.py",
           "p[i] -= learning_rate * g[i] / math.sqrt(vi + epsilon)",
           "p[i] += learning_rate * g[i] / math.sqrt(vi + epsilon)"),
    Mutant("sgd update's sign flipped", "kernels/optimizers.py",
           "param[i] -= learning_rate * grad[i]", "param[i] += learning_rate * grad[i]"),
    Mutant("adam's bias correction without its sqrt", "fastnn/backends/numpy_backend.py",
           "(1.0 - beta_2**step) ** 0.5", "(1.0 - beta_2**step)"),
    Mutant("take_rows bound >= changed to >", "kernels/rows.py",
           "if source < 0 or source >= n:", "if source < 0 or source > n:"),
    Mutant("confusion label guard removed", "kernels/rows.py",
           "if label < 0 or label >= classes:", "if False:"),
    Mutant("sum_rows out unchecked", "fastnn/backends/numba_backend.py",
           "if x.ndim != 2 or not _writable(out, (x.shape[1],), x.dtype):", "if x.ndim != 2:"),
    Mutant("cuda: count labels as they come", "fastnn/backends/cupy_backend.py",
           "labels = self._contiguous(labels, LABEL_DTYPE)  # the kernel reads labels[row] densely",
           "labels = self.xp.asarray(labels, dtype=LABEL_DTYPE)"),
    Mutant("cuda: relu's gradient decided by a float compare", "kernels/cuda/common.cuh",
           "case RELU: return greater(y, T(0)) ? T(1) : T(0);",
           "case RELU: return y > T(0) ? T(1) : T(0);"),
    Mutant("cuda: a lane reads another lane's entry", "kernels/cuda/common.cuh",
           "T top = negative_infinity(T(0));", "T top = row[0];"),
    Mutant("cuda: rmsprop's velocity not written back", "kernels/cuda/optimizers.cu",
           "velocity[i] = v;\n        param[i] -= learning_rate * g / sqrt(v + epsilon);",
           "param[i] -= learning_rate * g / sqrt(v + epsilon);"),
)  # fmt: skip

#: run the copy's tests with the editable install's mapping removed, so that fastnn and
#: fastnn.kernels are the copy's own
RUNNER = (
    "import sys; sys.meta_path[:] = [f for f in sys.meta_path "
    "if 'editable' not in repr(f).lower()]; import pytest; "
    "sys.exit(pytest.main(sys.argv[1:]))"
)


def copy_checkout(target: Path) -> None:
    """The tracked files of the checkout (and untracked ones not ignored) into ``target``."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def run_tests(copy: Path, tests: list[str]) -> tuple[bool, str, float]:
    """(whether a test failed, the first failure, seconds) for the copy as it stands."""
    env = {**os.environ, "FASTNN_HYPOTHESIS_PROFILE": "ci", "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, *tests, "-x", "-q", "-m", "not slow",
         "-p", "no:cacheprovider"],
        cwd=copy, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    caught = done.returncode != 0
    first = failed[0].split(" - ")[0] if failed else (done.stdout.strip().splitlines() or [""])[-1]
    return caught, first if caught else "", seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mutants", description=__doc__)
    parser.add_argument("--only", nargs="*", help="run the mutants whose names contain these")
    parser.add_argument("--tests", nargs="*", default=["tests"], help="what pytest runs")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(o in m.name for o in args.only)]
    with tempfile.TemporaryDirectory(prefix="fastnn-mutants-") as folder:
        copy = Path(folder)
        copy_checkout(copy)
        clean, first, seconds = run_tests(copy, args.tests)
        if clean:
            print(f"the unmutated copy fails its tests ({first}); nothing to measure")
            return 2
        print(f"unmutated: every test passes ({seconds:.0f} s)")
        rows = []
        for mutant in chosen:
            path = copy / mutant.path
            original = path.read_text()
            if original.count(mutant.old) != 1:
                print(f"{mutant.name}: the text to mutate is not in {mutant.path} exactly once")
                return 2
            path.write_text(original.replace(mutant.old, mutant.new))
            try:
                caught, first, seconds = run_tests(copy, args.tests)
            finally:
                path.write_text(original)
            rows.append((mutant.name, first if caught else "NOT CAUGHT", seconds))
            print(f"{mutant.name}: {rows[-1][1]} ({seconds:.0f} s)", flush=True)
    print("\n| mutant | caught by (first failing test) |\n| --- | --- |")
    for name, by, _ in rows:
        print(f"| {name} | {by} |")
    missed = [name for name, by, _ in rows if by == "NOT CAUGHT"]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
