"""The ``fastnn`` command: ``fastnn train`` and ``fastnn backends``."""

from __future__ import annotations

import argparse
import importlib.util
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastnn import __version__, distributed, launcher, recipes
from fastnn.backends import (
    BACKEND_NAMES,
    EMULATED_BACKENDS,
    BackendUnavailableError,
    available_backends,
    get_backend,
)
from fastnn.config import FLOAT_DTYPES, resolve_dtype
from fastnn.datasets.mnist import DatasetUnavailableError
from fastnn.extras import DISTRIBUTION, install_hint


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnn",
        description="A from-scratch feedforward network on NumPy, Numba or CuPy.",
    )
    parser.add_argument(
        "--version", action="version", version=f"fastnn {__version__} ({DISTRIBUTION})"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a recipe on MNIST and report test accuracy")
    train.add_argument(
        "--recipe",
        default="keras",
        choices=sorted(recipes.RECIPES),
        help="which network to train (default: keras)",
    )
    train.add_argument(
        "--backend",
        type=str.lower,
        choices=[*BACKEND_NAMES, "auto", *EMULATED_BACKENDS],
        help="array backend (default: $FASTNN_BACKEND, else auto; cupy-emulated runs the GPU "
        "code on the CPU, slowly, as a check)",
    )
    train.add_argument(
        "--epochs", type=_int_at_least(1), help="override the recipe's number of epochs"
    )
    train.add_argument(
        "--batch-size", type=_int_at_least(1), help="override the recipe's batch size"
    )
    train.add_argument(
        "--data",
        metavar="DIR",
        type=_existing_folder,
        help="an existing folder with the MNIST IDX files, or where to download them "
        "(default: $FASTNN_DATA_DIR, else ~/.cache/fastnn/mnist)",
    )
    train.add_argument(
        "--seed",
        type=_int_at_least(0),
        help="seed for weight init and shuffling (default: a new one each run, printed so "
        "that --seed repeats the run)",
    )
    train.add_argument(
        "--dtype", choices=FLOAT_DTYPES, help="float type (default: $FASTNN_DTYPE, else float32)"
    )
    train.add_argument(
        "--plot",
        metavar="DIR",
        help="write training curves, confusion matrix and sample digits there as PNG files "
        "(needs the [plot] extra)",
    )

    train.set_defaults(parser=train)  # its own usage, for settings refused after parsing
    commands.add_parser("backends", help="list the backends and why any cannot run here")
    _add_bench(commands)
    return parser


def _add_bench(commands: Any) -> None:
    from fastnn.benchmarks import workloads
    from fastnn.benchmarks.suite import GRAPHS, SECTIONS

    bench = commands.add_parser(
        "bench",
        help="time every backend (and the peers) side by side, checked against numpy",
        description="Benchmark the backends that can run here: each op at the network's sizes "
        "(checked against the numpy backend first), a keras epoch and scratch iterations "
        "beside PyTorch/JAX/Keras/plain NumPy and the GEMM floor, and time per step against "
        "batch size and hidden width.",
    )
    bench.add_argument(
        "--backend",
        action="append",
        type=str.lower,
        choices=[*BACKEND_NAMES, *EMULATED_BACKENDS],
        help="a backend to run (repeatable; default: every one that can run here; "
        "cupy-emulated's timings measure the emulation, not a GPU)",
    )
    bench.add_argument(
        "--ops",
        type=_names(workloads.OP_SIZES),
        help=f"comma-separated ops (default: all of {','.join(workloads.OP_SIZES)})",
    )
    bench.add_argument(
        "--sections",
        type=_names(SECTIONS),
        help=f"comma-separated sections (default: {','.join(SECTIONS)})",
    )
    bench.add_argument(
        "--sizes",
        choices=["real", "sweep"],
        help="the network's own sizes only, or a sweep around them (default: sweep; "
        "real with --quick)",
    )
    bench.add_argument(
        "--quick", action="store_true", help="small workloads, 2 rounds: a minute or so"
    )
    bench.add_argument(
        "--rounds", type=_int_at_least(1), help="timed rounds per figure (default 5; 2 quick)"
    )
    bench.add_argument("--no-peers", action="store_true", help="skip PyTorch/JAX/Keras/NumPy")
    bench.add_argument(
        "--graphs",
        choices=list(GRAPHS),
        default="on",
        help="cupy's training steps as CUDA graphs, eager, or both side by side (default: on)",
    )
    bench.add_argument(
        "--points",
        type=_points,
        metavar="BxH,...",
        help="the scaling section's batch x hidden points, e.g. 8192x4096 (default: a sweep)",
    )
    bench.add_argument("--json", metavar="FILE", help="write every figure and the machine as JSON")
    bench.add_argument(
        "--plot", metavar="DIR", help="write PNG charts there (needs the [plot] extra)"
    )


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an int >= ``minimum``, refused at parse time (exit status 2)."""

    def parse(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be an int >= {minimum}; received {text!r}")
        return value

    return parse


def _existing_folder(text: str) -> str:
    """An argparse type: a folder that exists (the command never creates one it was given)."""
    if not Path(text).expanduser().is_dir():
        raise argparse.ArgumentTypeError(f"must be an existing folder; received {text!r}")
    return text


def _points(text: str) -> list[tuple[int, int]]:
    """An argparse type: comma-separated BATCHxHIDDEN pairs of positive ints."""
    points = []
    for item in text.split(","):
        batch, _, hidden = item.strip().lower().partition("x")
        if not (batch.isdigit() and hidden.isdigit() and int(batch) > 0 and int(hidden) > 0):
            raise argparse.ArgumentTypeError(
                f"must be BATCHxHIDDEN pairs of positive ints, e.g. 8192x4096; received {text!r}"
            )
        points.append((int(batch), int(hidden)))
    return points


def _names(allowed: Any) -> Any:
    """An argparse type: a comma-separated list of names from ``allowed``."""

    def parse(text: str) -> list[str]:
        names = [name.strip().lower() for name in text.split(",") if name.strip()]
        unknown = [name for name in names if name not in allowed]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {unknown or 'empty list'}; choose from {', '.join(allowed)}"
            )
        return names

    return parse


def _train(args: argparse.Namespace) -> int:
    recipe = recipes.get(args.recipe)
    parser: argparse.ArgumentParser = args.parser
    # Every setting is checked before any work, and refused as a bad option is (usage,
    # exit status 2), whether it came as an option or from $FASTNN_BACKEND / $FASTNN_DTYPE.
    try:
        backend = get_backend(args.backend).name
        dtype = resolve_dtype(args.dtype).name
    except (ValueError, BackendUnavailableError) as error:
        parser.error(str(error))
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        parser.error(f"--plot needs matplotlib: {install_hint('plot', 'matplotlib')}")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    # started by mpiexec with several ranks: they train the recipe together, on rank 0's
    # seed, and only rank 0 speaks
    ranks = launcher.launched_size()
    rank = launcher.launched_rank() if ranks > 1 else 0
    if ranks > 1:
        seed = distributed.rank_zero_value(seed)
    say = print if rank == 0 else _silent
    say(f"recipe {recipe.name}: {recipe.description}")
    repeat = "" if args.seed is not None else f" (--seed {seed} repeats this run)"
    together = f", {ranks} ranks (MPI)" if ranks > 1 else ""
    say(f"backend {backend} ({dtype}), seed {seed}{repeat}{together}")
    result = recipes.run(
        args.recipe,
        backend=backend,
        epochs=args.epochs,
        batch_size=args.batch_size,
        data_dir=args.data,
        seed=seed,
        dtype=dtype,
        print_fn=say,
        distributed=ranks > 1,
    )
    # the passes themselves, and apart the setting up before them (the data moved to the
    # backend, compressed where sparse, the kernels loaded)
    passes = sum(result.epoch_seconds)
    say(
        f"test accuracy: {result.test_accuracy:.4f} - test loss: {result.test_loss:.4f} - "
        f"training time: {result.train_seconds:.2f}s ({passes / result.epochs:.3f}s/"
        f"{recipe.unit.lower()}, {result.train_seconds - passes:.2f}s setting up)"
    )
    if args.plot and rank == 0:
        for path in _train_plots(result, Path(args.plot)):
            print(f"wrote {path}")
    return 0


def _silent(*args: object) -> None:
    """The print of a rank other than 0 in a distributed run."""


def _train_plots(result: recipes.RecipeResult, out: Path) -> list[Path]:
    """The PNG files of ``fastnn train --plot``: curves, confusion matrix, sample digits."""
    from fastnn import metrics, plots

    # all ten digits, even one that the test set or the model never names
    matrix = metrics.confusion_matrix(result.y_test, result.predicted, num_classes=10)
    return [
        plots.plot_history(
            result.history, out / "training_curves.png", test_accuracy=result.test_accuracy
        ),
        plots.plot_confusion_matrix(matrix, out / "confusion_matrix.png"),
        plots.plot_digits(result.x_test, result.y_test, result.predicted, out / "digits.png"),
    ]


def _bench(args: argparse.Namespace) -> int:
    import json
    import shlex

    from fastnn.benchmarks import report, suite

    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 5)
    if args.backend:
        for name in args.backend:
            get_backend(name)  # an error naming why, before anything runs
    runnable = [info.name for info in available_backends() if info.available]
    options = suite.Options(
        backends=list(dict.fromkeys(args.backend or runnable)),
        ops=args.ops or tuple(suite.workloads.OP_SIZES),
        sizes=args.sizes or ("real" if args.quick else "sweep"),
        sections=args.sections or suite.SECTIONS,
        quick=args.quick,
        rounds=rounds,
        with_peers=not args.no_peers,
        graphs=args.graphs,
        points=args.points,
    )
    if args.plot and importlib.util.find_spec("matplotlib") is None:  # fail before timing
        raise ValueError(f"--plot needs matplotlib: {install_hint('plot', 'matplotlib')}")
    result = suite.run(
        options, lambda message: print(f"... {message}", file=sys.stderr, flush=True)
    )
    result["command"] = "fastnn " + " ".join(shlex.quote(a) for a in args.argv)
    print(report.table(result))
    if args.json:
        with open(args.json, "w") as file:
            json.dump(result, file, indent=2)
            file.write("\n")
        print(f"wrote {args.json}")
    if args.plot:
        from fastnn.benchmarks import plots

        for path in plots.write_plots(result, args.plot):
            print(f"wrote {path}")
    # a backend that disagrees with numpy fails the command; a peer's loss is only shown
    checked = result["ops"] + [row for row in result["training"] if row["kind"] == "backend"]
    failed = [row for row in checked if row["equivalent"] is False]
    if failed:
        print(f"fastnn: {len(failed)} result(s) differ from the numpy backend", file=sys.stderr)
    return 2 if failed else 0


def _backends() -> int:
    infos = available_backends(emulated=True)
    width = max(len(info.name) for info in infos)
    for info in infos:
        if info.name in EMULATED_BACKENDS and info.name == EMULATED_BACKENDS[0]:
            print("checks, not for speed: the cupy backend's code and CUDA kernels on the CPU")
        status = "available" if info.available else f"unavailable: {info.reason}"
        print(f"{info.name:<{width}} {status}")
    print(distributed.describe())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastnn`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "bench":
            args.argv = list(argv if argv is not None else sys.argv[1:])
            return _bench(args)
        return _backends()
    except DatasetUnavailableError as error:  # worded for the command: --data DIR
        print(f"fastnn: error: {error.explain('--data DIR')}", file=sys.stderr)
        return 1
    except (ValueError, BackendUnavailableError, OSError, ImportError,
            distributed.DistributedError) as error:  # fmt: skip
        print(f"fastnn: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:  # TrainingInterrupted says where training stopped
        print(f"fastnn: {interrupt or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
