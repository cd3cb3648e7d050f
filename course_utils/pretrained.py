"""Models shipped with the course, verified before use.

Each model is two files in the top-level ``pretrained/`` folder: the weights
``<name>.pt`` and a manifest ``<name>.json`` that says how they were made (the
command that reproduces them, the data, the measured figures) and holds the
weights' sha256. :func:`load` checks the digest before reading a byte with
``torch.load(weights_only=True)``, so a damaged, truncated or swapped file is
refused with a message that says what to do, and no file can run code.

``python -m course_utils.pretrained --list`` prints the table of shipped models.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from course_utils.core.config import REPO_ROOT
from course_utils.core.data import file_digest

__all__ = [
    "PRETRAINED_DIR",
    "PretrainedError",
    "sha256sum",
    "manifest",
    "load_state",
    "save_model",
    "load",
    "table",
    "recognisable_samples",
    "measure_glow",
    "measure_coloured_glow",
    "coloured_sample_figures",
    "make_glow",
]

#: Where the shipped models live.
PRETRAINED_DIR = REPO_ROOT / "pretrained"


class PretrainedError(RuntimeError):
    """A shipped model is missing, damaged or does not match its manifest."""


def sha256sum(path: str | os.PathLike) -> str:
    """The hex sha256 digest of a file."""
    return file_digest(path, "sha256")


def manifest(name: str, folder: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest of a shipped model (a dict read from ``<name>.json``).

    Raises:
        PretrainedError: there is no such model, or its manifest is unreadable.
    """
    folder = Path(folder) if folder is not None else PRETRAINED_DIR
    path = folder / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []
        raise PretrainedError(
            f"no pretrained model {name!r}: {path} does not exist; shipped models: "
            f"{', '.join(known) or 'none'} (in {folder})"
        )
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PretrainedError(f"the manifest {path} is unreadable: {err}") from err


def load_state(name: str, folder: str | os.PathLike | None = None) -> tuple[dict, dict]:
    """The verified weights file of ``name``: ``(state, manifest)``.

    Raises:
        PretrainedError: the weights are missing, their sha256 differs from
            the manifest's, or they cannot be read.
    """
    folder = Path(folder) if folder is not None else PRETRAINED_DIR
    info = manifest(name, folder)
    path = folder / info["file"]
    fix = (
        "restore it with `git checkout -- pretrained/` (the files are part of the course), "
        f"or re-create it with: {info.get('command', 'its training command')}"
    )
    if not path.is_file():
        raise PretrainedError(f"the weights of {name!r} are missing: no file {path}; {fix}")
    digest = sha256sum(path)
    if digest != info["sha256"]:
        raise PretrainedError(
            f"{path} is damaged or is not the file its manifest describes: sha256 {digest[:16]}… "
            f"instead of {info['sha256'][:16]}…; {fix}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types here
        raise PretrainedError(f"{path} passed its checksum but cannot be read: {err}") from err
    return state, info


def save_model(
    model: nn.Module,
    path: str | os.PathLike,
    info: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights to ``path`` and the manifest beside it (``.json``).

    ``info`` becomes the manifest, to which the file name and sha256 are added;
    ``extra`` (plain numbers, strings, lists, dicts) is stored with the weights.
    """
    from course_utils.core.checkpoints import save_checkpoint

    path = Path(path)
    save_checkpoint(path, {"model": model.state_dict(), "extra": extra or {}})
    info = {**info, "file": path.name, "sha256": sha256sum(path), "bytes": path.stat().st_size}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return path


def load(name: str, folder: str | os.PathLike | None = None) -> nn.Module:
    """A shipped model, ready to use (eval mode, CPU).

    Args:
        name: ``"digit-classifier"`` or a Glow listed by ``--list``.
        folder: where to look (default: the course's ``pretrained/``).

    Raises:
        PretrainedError: missing, damaged or mismatched files (see :func:`load_state`).
    """
    state, info = load_state(name, folder)
    kind = info.get("kind")
    if kind == "digit-classifier":
        from course_utils.glow.digits import DigitClassifier

        model: nn.Module = DigitClassifier()
    elif kind == "glow":
        from course_utils.glow.model import Glow, GlowConfig

        cfg = state["extra"]["config"]
        model = Glow(GlowConfig(**{**cfg, "shape": tuple(cfg["shape"])}))
    else:
        raise PretrainedError(f"the manifest of {name!r} names an unknown kind {kind!r}")
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as err:
        raise PretrainedError(
            f"the weights of {name!r} do not fit the model the course builds for it "
            f"({str(err).splitlines()[0]}); the file is from another version of the course"
        ) from err
    return model.eval()


def table(folder: str | os.PathLike | None = None) -> str:
    """A text table of every shipped model and its headline figures."""
    folder = Path(folder) if folder is not None else PRETRAINED_DIR
    rows = [f"{'name':22s} {'kind':17s} {'MB':>6s}  figures"]
    for path in sorted(folder.glob("*.json")):
        info = json.loads(path.read_text())
        figures = {
            k: info[k]
            for k in ("test_accuracy", "test_bits_per_dim", "recognisable_share")
            if k in info
        }
        text = ", ".join(f"{k} {v}" for k, v in figures.items())
        rows.append(
            f"{path.stem:22s} {info.get('kind', '?'):17s} {info.get('bytes', 0) / 1e6:6.2f}  {text}"
        )
    return "\n".join(rows)


def recognisable_samples(
    model: nn.Module, samples: int = 1000, temperatures: tuple[float, ...] = (0.7, 1.0)
) -> dict[float, Any]:
    """:func:`course_utils.glow.digits.recognisable` of ``samples`` draws of an MNIST Glow at each
    temperature (sampling seeded with 0 before each), by the shipped digit classifier."""
    from course_utils.glow.digits import recognisable

    classifier = load("digit-classifier")
    out = {}
    for t in temperatures:
        torch.manual_seed(0)
        out[t] = recognisable(classifier, model.sample(samples, temperature=t))
    return out


def measure_glow(model: nn.Module, dataset: str, samples: int = 1000) -> dict[str, Any]:
    """The figures a Glow's manifest records, measured on the official test split.

    Test bits/dim on all test images (dequantization noise seeded with 1); for
    MNIST also the recognisable share of ``samples`` samples at T = 0.7 and 1
    (:mod:`course_utils.glow.digits`, sampling seeded with 0).
    """
    from course_utils.core.data import image_splits

    _, test = image_splits(dataset)
    model.eval()
    figures: dict[str, Any] = {
        "test_bits_per_dim": round(model.bits_per_dim(test, seed=1), 4),
        "test_images": len(test),
    }
    if dataset == "mnist":
        for t, r in recognisable_samples(model, samples).items():
            figures[f"recognisable_T{t}"] = {
                "share": round(r.share, 4),
                "digits_drawn": r.digits_drawn,
                "per_digit": list(r.counts),
                "samples": r.n,
            }
        figures["recognisable_share"] = figures["recognisable_T0.7"]["share"]
    return figures


def measure_coloured_glow(model: nn.Module, samples: int = 1000) -> dict[str, Any]:
    """The figures of a coloured-MNIST Glow's manifest, on the official test digits, coloured.

    Test bits/dim on all 10,000 test digits (coloured with seed 1, noise seeded
    with 1), and :func:`coloured_sample_figures`.
    """
    from course_utils.core.data import coloured_splits

    _, test = coloured_splits("mnist", seed=0)
    model.eval()
    figures: dict[str, Any] = {
        "test_bits_per_dim": round(model.bits_per_dim(test, seed=1), 4),
        "test_images": len(test),
    }
    return figures | coloured_sample_figures(model, samples, test)


def coloured_sample_figures(
    model: nn.Module, samples: int = 1000, test: torch.Tensor | None = None
) -> dict[str, Any]:
    """A coloured-MNIST Glow's recognisable shares, the sample part of its manifest.

    For T = 0.7 and 1, the recognisable share of ``samples`` samples (seeded
    with 0) read through :func:`course_utils.composite.losses.ink`, and the distance of
    their mean colour from the coloured test digits'
    (:func:`course_utils.composite.losses.channel_mean_gap`); and the share of the first
    ``samples`` real test digits, for calibration. ``test``: those coloured test
    digits, if the caller has them already (else they are coloured here).
    """
    from course_utils.composite.losses import channel_mean_gap, ink
    from course_utils.core.data import coloured_splits
    from course_utils.glow.digits import recognisable

    if test is None:
        _, test = coloured_splits("mnist", seed=0)
    model.eval()
    classifier = load("digit-classifier")
    real = test.float() / 255
    figures: dict[str, Any] = {
        "recognisable_real_test_digits": round(
            recognisable(classifier, ink(real[:samples])).share, 4
        )
    }
    for t in (0.7, 1.0):
        torch.manual_seed(0)
        x = model.sample(samples, temperature=t)
        r = recognisable(classifier, ink(x))
        figures[f"recognisable_T{t}"] = {
            "share": round(r.share, 4),
            "digits_drawn": r.digits_drawn,
            "per_digit": list(r.counts),
            "samples": r.n,
            "colour_gap": round(float(channel_mean_gap(real, x)), 4),
        }
    figures["recognisable_share"] = figures["recognisable_T0.7"]["share"]
    return figures


def make_glow(
    name: str,
    dataset: str,
    recipe: str,
    minutes: float,
    device: str = "auto",
    folder: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train (or continue) a shipped Glow, measure it and write its weights and manifest.

    The run's resumable checkpoint (weights, optimizer, batch order) is
    ``<folder>/<name>.run.pt``: run the same command with a larger ``minutes``
    to continue it. ``<name>.pt`` holds the weights alone and ``<name>.json``
    the manifest, whose figures :func:`measure_glow` measures on the result.
    """
    import platform

    from course_utils.glow.train import GLOW_DATASETS, recipes, train_glow

    if dataset not in GLOW_DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {GLOW_DATASETS}")
    named = recipes()
    if recipe not in named:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(named)}")
    folder = Path(folder) if folder is not None else PRETRAINED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    coloured = dataset == "coloured-mnist"
    model, history = train_glow(
        dataset,
        minutes=minutes,
        recipe=named[recipe],
        device=device,
        checkpoint=folder / f"{name}.run.pt",
        eval_images=500 if coloured else 1000,
        steps_per_epoch=200 if coloured else 100,
        progress=False,
        on_epoch_end=lambda h: print(
            f"step {h.steps:6d}  {h.seconds[-1]:7.1f} s  held-out {h.eval[-1]:.4f} bits/dim",
            flush=True,
        ),
    )
    data = (
        "coloured-mnist (MNIST's 60,000 training digits, coloured with seed 0)"
        if coloured
        else f"{dataset} (60,000 training images)"
    )
    dev = next(model.parameters()).device
    info: dict[str, Any] = {
        "kind": "glow",
        "dataset": data,
        "recipe": recipe,
        "recipe_settings": named[recipe],
        "steps": history.steps,
        "images_seen": history.steps * named[recipe]["batch_size"],
        "training_minutes": round(history.seconds[-1] / 60, 1),
        "hardware": f"{dev.type}, {torch.get_num_threads()} threads, {platform.machine()}, "
        f"torch {torch.__version__}",
        "held_out_curve": [round(v, 4) for v in history.eval],
        "held_out_steps": history.epoch_steps
        if len(history.epoch_steps) == len(history.eval)
        # a run begun before steps were recorded: one stretch, every 100 steps and at the end
        else [min(100 * (k + 1), history.steps) for k in range(len(history.eval))],
        "held_out_images": "the first 1,000 official test images",
        "command": f"python -m course_utils.pretrained make {name} --dataset {dataset} "
        f"--recipe {recipe} --minutes {minutes:g}",
    }
    model = model.cpu()
    if coloured:
        info["held_out_images"] = "the first 500 official test digits, coloured (seed 1)"
        info.update(measure_coloured_glow(model))
    else:
        info.update(measure_glow(model, dataset))
    from course_utils.glow.model import glow_checkpoint_state

    save_model(model, folder / f"{name}.pt", info, extra=glow_checkpoint_state(model))
    return info


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils.pretrained --list``, or ``make NAME ...`` to train one."""
    from course_utils.glow.train import GLOW_DATASETS

    parser = argparse.ArgumentParser(prog="python -m course_utils.pretrained")
    parser.add_argument("--list", action="store_true", help="print the shipped models")
    sub = parser.add_subparsers(dest="command")
    make = sub.add_parser("make", help="train (or continue) a shipped Glow and write its manifest")
    make.add_argument("name", help="e.g. glow-mnist")
    make.add_argument("--dataset", choices=GLOW_DATASETS, required=True)
    make.add_argument("--recipe", default="course")
    make.add_argument("--minutes", type=float, required=True, help="total training minutes")
    make.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.command == "make":
        info = make_glow(args.name, args.dataset, args.recipe, args.minutes, args.device)
        print(json.dumps({k: v for k, v in info.items() if k != "held_out_curve"}, indent=1))
    elif args.list:
        print(table())
    else:
        parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
