"""Benchmark of lesson 02: the two coupling flows on moons, quality and training time.

Trains the RealNVP-style flow (couplings + invertible linear layers) and the
permutation flow with the lesson's own settings, ``course_utils.flows2d.flows.MOONS_RECIPE``,
and reports each model's held-out NLL and training wall time.

Target: best held-out NLL ≤ 1.10 nats on ``make_moons(noise=0.1)`` within 60 s of
training on a 2-core laptop CPU. The data's true entropy is about 1.01 nats
(lesson 02 computes it from the exact density), so a held-out NLL clearly below
that signals a bug, not a good model.

Usage::

    .venv/bin/python benchmarks/moons.py --out benchmarks/results/moons.json
    .venv/bin/python benchmarks/moons.py --table --out benchmarks/results/moons.json
"""

from __future__ import annotations

import argparse
import dataclasses

import harness  # benchmarks/harness.py, beside this script
import torch

from course_utils import seed_everything
from course_utils.core.data import moons
from course_utils.core.train import train
from course_utils.flows2d.flows import MOONS_RECIPE, MoonsRecipe, realnvp

TARGET_NLL = 1.10
TARGET_SECONDS = 60.0
ENTROPY_NATS = 1.01  # of make_moons(noise=0.1): 1.008 ± 0.004 by Monte Carlo in lesson 02


def run_model(
    mixing: str, recipe: MoonsRecipe, train_x: torch.Tensor, test_x: torch.Tensor
) -> dict:
    """Train one model exactly as lesson 02 does and measure it.

    Args:
        mixing: ``"linear"`` or ``"permutation"``, as in :func:`realnvp`.
        recipe: the settings.
        train_x: ``(n_train, 2)`` training points.
        test_x: ``(n_test, 2)`` held-out points.

    Returns:
        A JSON-ready dict: held-out and final training NLL (nats), training
        seconds (the optimisation only, no evaluation), steps and parameter count.
    """
    seed_everything(recipe.seed)
    model = realnvp(2, recipe.n_couplings, recipe.hidden, mixing=mixing)
    optimizer, scheduler = recipe.optimizer(model)
    history, seconds = harness.timed(
        lambda: train(
            model,
            lambda m, x: m.forward_kld(x),
            train_x,
            epochs=recipe.epochs,
            batch_size=recipe.batch_size,
            optimizer=optimizer,
            scheduler=scheduler,
            device="cpu",
            progress=False,
            seed=recipe.seed,
        )
    )
    with torch.no_grad():
        test_nll = float(model.forward_kld(test_x))
    return {
        "test_nll": round(test_nll, 4),
        "train_nll_last_epoch": round(history.epoch_loss[-1], 4),
        "train_seconds": round(seconds, 2),
        "steps": history.steps,
        "n_params": sum(p.numel() for p in model.parameters()),
        "stopped": history.stopped,
    }


def table(result: dict) -> str:
    """The result as the printed table: each model's NLL and time, and the target."""
    s = result["settings"]
    lines = [
        f"lesson 02 on moons: {s['n_train']} training / {s['n_test']} held-out points",
        f"{'model':<22}{'held-out NLL':>14}{'train NLL':>11}{'train s':>9}{'steps':>7}",
    ]
    names = {"linear": "couplings + linear", "permutation": "couplings + permute"}
    for mixing, m in result["models"].items():
        lines.append(
            f"{names[mixing]:<22}{m['test_nll']:>14.4f}{m['train_nll_last_epoch']:>11.4f}"
            f"{m['train_seconds']:>9.1f}{m['steps']:>7d}"
        )
    target = result["target"]
    lines.append(
        f"target: best held-out NLL <= {target['test_nll_max']} nats within "
        f"{target['train_seconds_max']:g} s -> {'met' if result['target_met'] else 'NOT met'} "
        f"(true entropy ~{result['entropy_nats_reference']:.2f} nats)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print a table and write the JSON file.

    Args:
        argv: command-line arguments (default: ``sys.argv``).

    Returns:
        The result written to ``--out``.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    harness.output_options(parser)
    parser.add_argument(
        "--epochs", type=int, default=None, help="override the recipe (smoke tests only)"
    )
    args = parser.parse_args(argv)
    if harness.table_only(parser, args, table):
        return harness.read_result(args.out)

    recipe = MOONS_RECIPE
    if args.epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=args.epochs)
    torch.set_num_threads(recipe.threads)
    train_x, test_x = moons(n_train=recipe.n_train, n_test=recipe.n_test, noise=recipe.noise)

    models = {}
    for mixing in ("linear", "permutation"):
        models[mixing] = run_model(mixing, recipe, train_x, test_x)

    best = min(m["test_nll"] for m in models.values())
    slowest = max(m["train_seconds"] for m in models.values())
    result = {
        "benchmark": "lesson 02: coupling flows on moons",
        "models": models,
        "best_test_nll": best,
        "target": {"test_nll_max": TARGET_NLL, "train_seconds_max": TARGET_SECONDS},
        "target_met": best <= TARGET_NLL and slowest <= TARGET_SECONDS,
        "entropy_nats_reference": ENTROPY_NATS,
        "settings": dataclasses.asdict(recipe),
    }
    print(harness.write_result(args.out, result, table(result)))
    return harness.read_result(args.out)


if __name__ == "__main__":
    main()
