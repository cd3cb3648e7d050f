"""The Glow's recipes: typed, validated, frozen, one digest per recipe, the schedule they drive."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from course_utils.glow.model import Glow, GlowConfig
from course_utils.glow.recipes import (
    COURSE,
    COURSE_LONG,
    FINETUNE,
    RECIPES,
    Optimiser,
    Recipe,
    Schedule,
    get_recipe,
    recipe_name,
)

TINY = GlowConfig(levels=2, blocks=1, hidden=8)


def test_every_named_recipe_builds_its_model_and_optimiser() -> None:
    for name, recipe in {**RECIPES, "finetune": FINETUNE}.items():
        model = Glow(recipe.model)
        optimizer, _ = recipe.make_optimizer(model)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(
            recipe.optimiser.lr * recipe.schedule.factor(0)
        ), name


def test_bad_settings_are_refused_with_the_setting_named() -> None:
    with pytest.raises(ValueError, match="unknown optimiser 'sgd'.*adam.*adamax"):
        Optimiser("sgd")
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        Optimiser(lr=float("nan"))
    with pytest.raises(ValueError, match="weight_decay"):
        Optimiser(weight_decay=-1.0)
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0"):
        Schedule(warmup_steps=-1)
    with pytest.raises(ValueError, match="lr_drop factor"):
        Schedule(lr_drop=(10, 0.0))
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        Recipe(batch_size=0)
    with pytest.raises(ValueError, match="a recipe's model must be a GlowConfig, got dict"):
        Recipe(model={"levels": 2})


def test_numpy_numbers_become_plain_python_numbers() -> None:
    opt = Optimiser(lr=np.float64(1e-3))
    assert type(opt.lr) is float
    optimizer, _ = Recipe(model=TINY, optimiser=opt).make_optimizer(Glow(TINY))
    assert type(optimizer.param_groups[0]["lr"]) is float  # checkpoints load weights-only


def test_recipes_are_frozen_and_replace_routes_each_change_to_its_part() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        COURSE.batch_size = 8  # type: ignore[misc]
    r = COURSE.replace(base="spectral", dequantizer=0, lr=2e-3, warmup_steps=5, batch_size=32)
    assert r.model.base == "spectral" and r.model.dequantizer == 0
    assert r.optimiser.lr == 2e-3 and r.schedule.warmup_steps == 5 and r.batch_size == 32
    assert COURSE.model.base == "channel" and COURSE.optimiser.lr == 1e-3  # unchanged
    assert COURSE.replace() == COURSE
    with pytest.raises(ValueError, match="unknown recipe setting 'widht'"):
        COURSE.replace(widht=3)


def test_digest_names_the_recipe_and_survives_a_round_trip() -> None:
    digests = {r.digest() for r in RECIPES.values()}
    assert len(digests) == len(RECIPES)  # every named recipe has its own checkpoint name
    for recipe in RECIPES.values():
        again = Recipe.from_dict(recipe.as_dict())
        assert again == recipe and again.digest() == recipe.digest()
    assert COURSE.replace(lr=5e-4).digest() != COURSE.digest()
    with pytest.raises(ValueError, match="not a recipe"):
        Recipe.from_dict({"model": {}})


def test_recipe_names_and_unknown_names() -> None:
    assert recipe_name(COURSE_LONG) == "course-long" and recipe_name(FINETUNE) == "custom"
    assert get_recipe(COURSE) is COURSE
    with pytest.raises(ValueError, match="unknown recipe 'curse'.*course"):
        get_recipe("curse")


def test_schedule_warms_up_linearly_then_drops_from_its_step() -> None:
    s = Schedule(warmup_steps=4, lr_drop=(6, 0.2))
    want = [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.2, 0.2]
    assert [s.factor(k) for k in range(8)] == pytest.approx(want)
    model = Glow(TINY)
    optimizer, scheduler = Recipe(
        model=TINY, optimiser=Optimiser(lr=1e-2), schedule=s
    ).make_optimizer(model)
    seen = []
    for _ in range(8):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([1e-2 * f for f in want])
    assert Schedule().factor(10**6) == 1.0  # no warm-up, no drop by default
