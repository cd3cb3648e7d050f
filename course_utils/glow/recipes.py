"""The Glow's recipes, in one typed home.

A :class:`Recipe` is four frozen parts: the model (a
:class:`~course_utils.glow.model.GlowConfig`), the :class:`Optimiser`, the
:class:`Schedule` of its learning rate, and the batch size. Every named recipe
of the course is defined here, in :data:`RECIPES` (those the command line
trains) and :data:`FINETUNE` (lesson 09's fine-tuning with the composite loss).

>>> COURSE.batch_size, COURSE.optimiser.lr
(16, 0.001)
>>> COURSE.replace(lr=2e-3, base="spectral").model.base
'spectral'
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import torch
from torch import nn

from course_utils.core.checks import check_float, check_int
from course_utils.glow.model import GlowConfig

__all__ = [
    "COURSE",
    "COURSE_COND",
    "COURSE_LONG",
    "FINETUNE",
    "FULL",
    "OPTIMISERS",
    "PLAYGROUND",
    "PLAYGROUND_MODEL",
    "RECIPES",
    "REFERENCE",
    "SINGLE_SCALE",
    "SMALL",
    "Optimiser",
    "Recipe",
    "Schedule",
    "get_recipe",
    "recipe_name",
]

#: The optimisers a recipe can name.
OPTIMISERS = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax}


@dataclass(frozen=True)
class Optimiser:
    """Which optimiser, its learning rate and weight decay, and gradient clipping.

    Attributes:
        kind: ``"adam"`` or ``"adamax"`` (:data:`OPTIMISERS`).
        lr: the learning rate after warm-up, > 0.
        weight_decay: >= 0.
        max_grad_norm: clip the gradient's norm to this (None: no clipping).
    """

    kind: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    max_grad_norm: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in OPTIMISERS:
            raise ValueError(f"unknown optimiser {self.kind!r}; choose one of {sorted(OPTIMISERS)}")
        # Stored as plain floats (a numpy scalar would reach the optimiser's state).
        set_ = object.__setattr__
        set_(self, "lr", check_float("lr", self.lr, positive=True))
        set_(self, "weight_decay", check_float("weight_decay", self.weight_decay, minimum=0))
        if self.max_grad_norm is not None:
            set_(
                self,
                "max_grad_norm",
                check_float("max_grad_norm", self.max_grad_norm, positive=True),
            )


@dataclass(frozen=True)
class Schedule:
    """The learning rate's schedule: a linear warm-up, then an optional drop.

    Attributes:
        warmup_steps: steps of linear warm-up from ``lr / warmup_steps`` to ``lr``, >= 0.
        lr_drop: ``(step, factor)``: the learning rate times ``factor`` from that
            step on (computed from the step count, so a resumed run picks it up).
        class_loss: ``(step, weight)``, for a class-conditional model: from that
            step on the loss adds ``weight`` times the cross-entropy of the
            Bayes-rule class posterior ``p(y | x) ∝ p(x | y)`` (a hybrid of the
            likelihood and a classifier's loss, both in nats per image).

    >>> [round(Schedule(warmup_steps=2, lr_drop=(3, 0.5)).factor(s), 2) for s in range(4)]
    [0.5, 1.0, 1.0, 0.5]
    """

    warmup_steps: int = 0
    lr_drop: tuple[int, float] | None = None
    class_loss: tuple[int, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "warmup_steps", check_int("warmup_steps", self.warmup_steps, minimum=0)
        )
        # (step, value) pairs: a step >= 0 from which a positive value holds
        for name, what in (("lr_drop", "factor"), ("class_loss", "weight")):
            pair = getattr(self, name)
            if pair is not None:
                step, value = pair
                object.__setattr__(
                    self,
                    name,
                    (
                        check_int(f"{name} step", step, minimum=0),
                        check_float(f"{name} {what}", value, positive=True),
                    ),
                )

    def factor(self, step: int) -> float:
        """The learning rate's multiplier at ``step`` (0-based)."""
        warm = min(1.0, (step + 1) / max(1, self.warmup_steps))
        drop_step, drop = self.lr_drop if self.lr_drop is not None else (math.inf, 1.0)
        return warm * (drop if step >= drop_step else 1.0)

    def class_weight(self, step: int) -> float:
        """The weight of the class posterior's cross-entropy at ``step`` (0 before it starts).

        >>> [Schedule(class_loss=(2, 30.0)).class_weight(s) for s in (1, 2)]
        [0.0, 30.0]
        """
        if self.class_loss is None or step < self.class_loss[0]:
            return 0.0
        return self.class_loss[1]


@dataclass(frozen=True)
class Recipe:
    """How to train a Glow: the model, the optimiser, the schedule and the batch size."""

    model: GlowConfig = field(default_factory=GlowConfig)
    optimiser: Optimiser = field(default_factory=Optimiser)
    schedule: Schedule = field(default_factory=Schedule)
    batch_size: int = 16

    def __post_init__(self) -> None:
        for name, kind in (("model", GlowConfig), ("optimiser", Optimiser), ("schedule", Schedule)):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(
                    f"a recipe's {name} must be a {kind.__name__}, "
                    f"got {type(getattr(self, name)).__name__}"
                )
        object.__setattr__(self, "batch_size", check_int("batch_size", self.batch_size, minimum=1))
        if self.schedule.class_loss is not None and self.model.num_classes is None:
            raise ValueError(
                "class_loss needs a class-conditional model (set num_classes): it is the "
                "cross-entropy of the class posterior p(y | x)"
            )

    def replace(self, **changes: Any) -> Recipe:
        """A copy with ``changes``, each a field of the model, optimiser, schedule or recipe.

        >>> SMALL.replace(hidden=32, lr=1e-2).model.hidden
        32

        Raises:
            ValueError: a key is no field of any part.
        """
        parts: dict[str, dict[str, Any]] = {"model": {}, "optimiser": {}, "schedule": {}, "": {}}
        owners = {
            **{f.name: "model" for f in fields(GlowConfig)},
            **{f.name: "optimiser" for f in fields(Optimiser)},
            **{f.name: "schedule" for f in fields(Schedule)},
            "batch_size": "",
        }
        for key, value in changes.items():
            if key not in owners:
                raise ValueError(
                    f"unknown recipe setting {key!r}; choose among the fields of GlowConfig, "
                    f"Optimiser, Schedule and 'batch_size': {sorted(owners)}"
                )
            parts[owners[key]][key] = value
        return replace(
            self,
            model=replace(self.model, **parts["model"]),
            optimiser=replace(self.optimiser, **parts["optimiser"]),
            schedule=replace(self.schedule, **parts["schedule"]),
            **parts[""],
        )

    def as_dict(self) -> dict[str, Any]:
        """The recipe as plain JSON-ready values (tuples become lists), as manifests record it.

        ``num_classes`` and ``class_loss`` appear only where they are set, so
        every other recipe keeps the values (and the digest) it had before.
        """
        values = json.loads(json.dumps(asdict(self)))
        if values["model"]["num_classes"] is None:
            del values["model"]["num_classes"]
        if values["schedule"]["class_loss"] is None:
            del values["schedule"]["class_loss"]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Recipe:
        """The recipe :meth:`as_dict` wrote (lists back to tuples where the fields hold tuples)."""

        def tuples(v: Any) -> Any:
            return tuple(v) if isinstance(v, list) else v

        try:
            return cls(
                model=GlowConfig(**{k: tuples(v) for k, v in values["model"].items()}),
                optimiser=Optimiser(**values["optimiser"]),
                schedule=Schedule(**{k: tuples(v) for k, v in values["schedule"].items()}),
                batch_size=values["batch_size"],
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a recipe written by Recipe.as_dict: {err}") from err

    def digest(self) -> str:
        """A short hash of the recipe: equal recipes, equal digests.

        >>> COURSE.digest() == COURSE.replace().digest() != SMALL.digest()
        True
        """
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:8]

    def make_optimizer(
        self, model: nn.Module
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """The optimiser over ``model``'s parameters and its schedule (stepped after every step)."""
        o = self.optimiser
        opt = OPTIMISERS[o.kind](model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        # A plain function (not a bound method): LambdaLR stores no state for it.
        schedule = self.schedule
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: schedule.factor(step))


#: normflows' own Glow example scaled to 28×28: L=2, K=16, 128 hidden channels,
#: Adamax with lr 1e-3, data modelled directly in [0, 1) (no logit).
REFERENCE = Recipe(
    model=GlowConfig(levels=2, blocks=16, hidden=128, logit_alpha=None),
    optimiser=Optimiser("adamax", lr=1e-3, weight_decay=1e-5),
    batch_size=128,
)

#: The course's CPU recipe, chosen by measured held-out bits/dim per second of
#: CPU time (``benchmarks/glow_ablation.py``): two checkerboard couplings at
#: full resolution, gated coupling networks, a logit with a tiny α, a learned
#: dequantization noise, and batches of 16.
COURSE = Recipe(
    model=GlowConfig(
        levels=2,
        blocks=(2, 4),
        hidden=(48, 64),
        net="gated",
        net_layers=2,
        full_res=2,
        full_res_hidden=32,
        dequantizer=4,
        dequantizer_hidden=16,
        logit_alpha=1e-5,
    ),
    optimiser=Optimiser("adam", lr=1e-3, max_grad_norm=100.0),
    schedule=Schedule(warmup_steps=100),
    batch_size=16,
)

#: How the shipped ``glow-mnist`` and ``glow-fashion-mnist`` were trained for
#: longer: the course recipe, whose first 8,800 steps it repeats exactly, then
#: the learning rate times 0.2 (batches of 16 make the larger steps noisy; the
#: held-out curve had stopped falling at 1e-3).
COURSE_LONG = COURSE.replace(lr_drop=(8800, 0.2))

#: The class-conditional Glow of lesson 11 (shipped as ``glow-mnist-cond``):
#: the long course recipe (same model, optimiser and learning-rate drop) with a
#: base that depends on the digit's class (``num_classes=10``). Until step 8,800
#: it maximises the likelihood ``p(x | y)`` alone; from then on (when the
#: learning rate drops) the loss adds 300 times the cross-entropy of the
#: Bayes-rule posterior ``p(y | x)``. The likelihood alone classified about
#: 84 % of held-out digits at step 7,400: the class is about 3 bits of a digit's
#: 850, so the likelihood barely cares about it.
COURSE_COND = COURSE_LONG.replace(num_classes=10, class_loss=(8800, 300.0))

#: The course recipe widened for a GPU (``--device cuda``): more blocks and
#: channels, larger batches. Not yet measured on a GPU.
FULL = COURSE.replace(
    blocks=(4, 8),
    hidden=(96, 128),
    full_res=4,
    full_res_hidden=64,
    dequantizer_hidden=32,
    warmup_steps=500,
    batch_size=64,
)

#: A small, fast recipe (76k parameters, normflows' own ``GlowBlock``, batch
#: 64): far weaker per CPU-second than :data:`COURSE`, kept for quick
#: experiments on the command line.
SMALL = Recipe(
    model=GlowConfig(levels=2, blocks=4, hidden=64, logit_alpha=0.05),
    optimiser=Optimiser("adam", lr=2e-3),
    schedule=Schedule(warmup_steps=100),
    batch_size=64,
)

#: The 3-channel Glow of lesson 09 (shipped as ``glow-coloured-mnist``): lesson
#: 07's course model for three channels, whose base reads each latent in the
#: cosine basis (``base="spectral"``, :class:`course_utils.glow.layers.SpectralGlowBase`),
#: so that a background of one colour across the image is a single latent
#: coordinate per channel.
PLAYGROUND_MODEL = replace(COURSE.model, shape=(3, 28, 28), base="spectral")
#: How the shipped ``glow-coloured-mnist`` was pretrained on the NLL alone: the
#: long course recipe (Adam at 1e-3, then at 2e-4 from step 8,800) on that model.
PLAYGROUND = COURSE_LONG.replace(shape=(3, 28, 28), base="spectral")
#: How lesson 09 and its playground fine-tune that model with the composite
#: loss: a smaller learning rate than the pretraining's, so the added terms
#: change a model that already draws digits instead of starting it over.
FINETUNE = Recipe(
    model=PLAYGROUND_MODEL,
    optimiser=Optimiser("adam", lr=2e-4, max_grad_norm=100.0),
    schedule=Schedule(warmup_steps=10),
    batch_size=16,
)
#: The course recipe with one level instead of two, for lesson 07's comparison of
#: single-scale and multi-scale Glow: the same six Glow blocks (all at 14×14, 4
#: channels), the same full-resolution couplings and dequantizer, hidden
#: channels chosen so that it has about as many parameters (1.16M against 1.18M),
#: and a single latent of shape (4, 14, 14): nothing is split off early.
SINGLE_SCALE = COURSE.replace(levels=1, blocks=6, hidden=60)

#: The recipes the command line trains, by name.
RECIPES: dict[str, Recipe] = {
    "course": COURSE,
    "course-long": COURSE_LONG,
    "course-cond": COURSE_COND,
    "reference": REFERENCE,
    "full": FULL,
    "small": SMALL,
    "single-scale": SINGLE_SCALE,
    "playground": PLAYGROUND,
}


def get_recipe(recipe: str | Recipe) -> Recipe:
    """A :class:`Recipe` given itself or its name in :data:`RECIPES`.

    Raises:
        ValueError: an unknown name, or neither a name nor a Recipe.
    """
    if isinstance(recipe, Recipe):
        return recipe
    if isinstance(recipe, str) and recipe in RECIPES:
        return RECIPES[recipe]
    raise ValueError(f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)} or pass a Recipe")


def recipe_name(recipe: Recipe) -> str:
    """The name of ``recipe`` in :data:`RECIPES`, or ``"custom"``.

    >>> recipe_name(COURSE), recipe_name(COURSE.replace(lr=5e-4))
    ('course', 'custom')
    """
    return next((k for k, v in RECIPES.items() if v == recipe), "custom")
