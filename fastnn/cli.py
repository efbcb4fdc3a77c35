"""The ``fastnn`` command: ``fastnn train`` and ``fastnn backends``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fastnn import recipes
from fastnn.backends import BACKEND_NAMES, BackendUnavailableError, available_backends
from fastnn.config import FLOAT_DTYPES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastnn",
        description="A from-scratch feedforward network on NumPy, Numba or CuPy.",
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
        choices=[*BACKEND_NAMES, "auto"],
        help="array backend (default: $FASTNN_BACKEND, else auto)",
    )
    train.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    train.add_argument(
        "--data", metavar="DIR", help="folder with the MNIST IDX files (default: $FASTNN_DATA_DIR)"
    )
    train.add_argument("--seed", type=int, help="seed for weight init and shuffling")
    train.add_argument(
        "--dtype", choices=FLOAT_DTYPES, help="float type (default: $FASTNN_DTYPE, else float32)"
    )

    commands.add_parser("backends", help="list the backends and why any cannot run here")
    return parser


def _train(args: argparse.Namespace) -> int:
    recipe = recipes.get(args.recipe)
    print(f"recipe {recipe.name}: {recipe.description}")
    result = recipes.run(
        args.recipe,
        backend=args.backend,
        epochs=args.epochs,
        data_dir=args.data,
        seed=args.seed,
        dtype=args.dtype,
    )
    per_epoch = result.train_seconds / max(1, result.epochs)
    print(
        f"test accuracy: {result.test_accuracy:.4f} - test loss: {result.test_loss:.4f} - "
        f"training time: {result.train_seconds:.2f}s ({per_epoch:.3f}s/epoch) - "
        f"backend: {result.backend} ({result.dtype})"
    )
    return 0


def _backends() -> int:
    for info in available_backends():
        status = "available" if info.available else f"unavailable: {info.reason}"
        print(f"{info.name:<6} {status}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fastnn`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        return _backends()
    except (ValueError, BackendUnavailableError, OSError) as error:
        print(f"fastnn: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
