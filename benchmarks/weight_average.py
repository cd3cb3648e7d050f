"""Does an exponential moving average of the weights help lesson 07's Glow after 10 minutes?

One run of the course recipe on one CPU thread, on MNIST's training digits with
the last ``--validation`` of them held out (settings are chosen on training
digits, never on the test split). Averages of the weights with several decays
ride along: after every optimiser step each average moves towards the current
weights, ``a <- d·a + (1 - d)·w``, from a zero start, divided by ``1 - d^n`` at
the end (the bias correction Adam uses). The averages do not change the
training, so the raw weights and every average come from **the same
trajectory**, and the comparison needs no second run.

Measured for each set of weights: bits/dim on the held-out training digits
(dequantization noise seeded with 1) and the recognisable share of
``--samples`` samples at T = 0.7 and T = 1 (the shipped digit classifier,
confidence ≥ 0.9; sampling seeded with 0).

Usage::

    .venv/bin/python benchmarks/weight_average.py --out benchmarks/results/weight_average.json
    .venv/bin/python benchmarks/weight_average.py --minutes 0.2 --samples 100 --out /tmp/w.json
    .venv/bin/python benchmarks/weight_average.py --model base=spectral --out /tmp/spectral.json

``--model KEY=VALUE`` changes the recipe's model (a :class:`course_utils.glow.model.GlowConfig`
field), ``--recipe KEY=VALUE`` one of its training settings (``lr``, ``batch_size``, ...);
a value is read as JSON, else as a string.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import tempfile
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

ROOT = Path(__file__).resolve().parent.parent


class WeightAverages:
    """Bias-corrected moving averages of an optimiser's parameters, one per decay."""

    def __init__(self, decays: list[float]) -> None:
        if not decays or not all(0 < d < 1 for d in decays):
            raise ValueError(f"decays must lie in (0, 1), got {decays}")
        self.decays = decays
        self.sums: dict[float, list[torch.Tensor]] = {}
        self.params: list[torch.Tensor] = []
        self.steps = 0

    def update(self, optimizer: torch.optim.Optimizer, *_: object) -> None:
        if not self.params:  # the first step: the parameters, and views of them without autograd
            self.params = [p for g in optimizer.param_groups for p in g["params"]]
            self._values = [p.detach() for p in self.params]
            self.sums = {d: [torch.zeros_like(p) for p in self._values] for d in self.decays}
        with torch.no_grad():
            for d in self.decays:
                torch._foreach_mul_(self.sums[d], d)
                torch._foreach_add_(self.sums[d], self._values, alpha=1 - d)
        self.steps += 1

    def model(self, model: torch.nn.Module, decay: float) -> torch.nn.Module:
        """A copy of ``model`` whose parameters are the average with ``decay``."""
        out = copy.deepcopy(model)
        correction = 1 - decay**self.steps
        average = {id(p): a for p, a in zip(self.params, self.sums[decay], strict=True)}
        with torch.no_grad():
            for p, q in zip(model.parameters(), out.parameters(), strict=True):
                q.copy_(average[id(p)] / correction)
        return out.eval()


def overrides(pairs: list[str], keys: object) -> dict:
    """``["base=spectral", "hidden=[64, 96]"]`` -> ``{"base": "spectral", "hidden": [64, 96]}``."""
    out: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in keys:
            raise SystemExit(f"wanted KEY=VALUE with KEY one of {sorted(keys)}, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def measure(model: torch.nn.Module, held_out: torch.Tensor, samples: int) -> dict:
    from course_utils.pretrained import recognisable_samples

    model.eval()
    row: dict = {"held_out_bits_per_dim": round(model.bits_per_dim(held_out, seed=1), 4)}
    for t, r in recognisable_samples(model, samples).items():
        row[f"recognisable_T{t}"] = round(r.share, 4)
        row[f"digits_drawn_T{t}"] = r.digits_drawn
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--decays", type=float, nargs="+", default=[0.99, 0.995, 0.999, 0.9995])
    parser.add_argument("--validation", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--recipe", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/weight_average.json")
    args = parser.parse_args(argv)

    from course_utils.core.data import image_splits
    from course_utils.glow.model import GlowConfig
    from course_utils.glow.recipes import COURSE, Optimiser, Schedule
    from course_utils.glow.train import train_glow

    model_changes = overrides(args.model, GlowConfig.__dataclass_fields__)
    settings = {*Optimiser.__dataclass_fields__, *Schedule.__dataclass_fields__, "batch_size"}
    recipe_changes = overrides(args.recipe, settings)
    recipe = COURSE.replace(**model_changes, **recipe_changes)
    torch.set_num_threads(1)
    averages = WeightAverages(args.decays)
    handle = register_optimizer_step_post_hook(averages.update)
    with tempfile.TemporaryDirectory() as tmp:
        model, history = train_glow(
            "mnist",
            minutes=args.minutes,
            recipe=recipe,
            checkpoint=Path(tmp) / "run.pt",
            validation=args.validation,
            progress=False,
        )
    handle.remove()
    if averages.steps != history.steps:
        raise RuntimeError(f"{averages.steps} averaged steps for {history.steps} training steps")
    held_out = image_splits("mnist")[0][-args.validation :]
    rows = {"raw weights": measure(model, held_out, args.samples)}
    for d in args.decays:
        rows[f"average, decay {d:g}"] = measure(averages.model(model, d), held_out, args.samples)
    result = {
        "what": "the course recipe on MNIST, raw weights and moving averages of the same run",
        "model_changes": model_changes,
        "recipe_changes": recipe_changes,
        "data": f"trained on MNIST's first {60000 - args.validation:,} training digits; "
        f"bits/dim on the last {args.validation:,} training digits (held out)",
        "minutes": args.minutes,
        "steps": history.steps,
        "samples": args.samples,
        "hardware": f"cpu, 1 thread, {platform.machine()}, torch {torch.__version__}",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{history.steps} steps in {args.minutes:g} min; {result['data']}")
    print(f"{'weights':24s} {'bits/dim':>9s} {'rec. T=0.7':>11s} {'rec. T=1':>9s}")
    for name, row in rows.items():
        print(
            f"{name:24s} {row['held_out_bits_per_dim']:9.4f} "
            f"{row['recognisable_T0.7']:11.3f} {row['recognisable_T1.0']:9.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
