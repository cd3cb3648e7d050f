"""Lesson 09's loss playground, driven headless: sliders set, buttons clicked from pytest."""

from __future__ import annotations

import ipywidgets as W
import numpy as np
import pytest
import torch

from course_utils import pretrained, release
from course_utils.composite.losses import CONFIGURATIONS
from course_utils.composite.measure import coloured_sample_figures
from course_utils.core.data import colourize, image_splits
from course_utils.glow import train as glow_train
from course_utils.glow.model import Glow
from course_utils.glow.recipes import PLAYGROUND, PLAYGROUND_MODEL, RECIPES, Recipe
from course_utils.glow.train import train_glow
from course_utils.panels.playground import (
    DEFAULTS,
    Playground,
    PlaygroundState,
    history_html,
    playground_figure,
    playground_panel,
    playground_train,
    starting_model,
)
from course_utils.pretrained import manifest

pytestmark = pytest.mark.usefixtures("rng", "one_thread")

TINY = {"shape": (3, 28, 28), "levels": 2, "blocks": 1, "hidden": 8, "logit_alpha": 0.05}


@pytest.fixture
def state(rng: torch.Generator) -> PlaygroundState:
    grey = torch.zeros(160, 28, 28, dtype=torch.uint8)
    grey[:, 8:20, 10:18] = torch.randint(100, 256, (160, 12, 8), generator=rng, dtype=torch.uint8)
    images = colourize(grey, seed=0)[0]
    return PlaygroundState(Glow(**TINY), images[:128], images[128:], n_test=32)


def samples_of(fig) -> np.ndarray:
    """The pixels of the sample grid (the figure's first axis)."""
    return np.asarray(fig.axes[0].images[0].get_array()).copy()


def test_controls_are_the_functions_arguments(state: PlaygroundState) -> None:
    p = playground_panel(state)
    assert isinstance(p, Playground) and p.draws == 1
    assert set(p.values()) == {"alpha", "beta", "temperature", "sigma", "steps", "scale_noise"}
    sliders = [w for w in p.controls.values() if not isinstance(w, W.Checkbox)]
    assert all(not w.continuous_update for w in sliders)
    assert isinstance(p.controls["alpha"], W.FloatLogSlider)  # α on a log scale
    assert "no run yet" in p.table.value


def test_train_click_changes_samples_and_grows_the_history(state: PlaygroundState) -> None:
    p = playground_panel(state)
    before = samples_of(p.last_figure)
    weights = [q.detach().clone() for q in state.model.parameters()]
    p.controls["steps"].value = 10
    p.controls["alpha"].value = 100.0
    p.controls["beta"].value = 2.0
    p.controls["sigma"].value = 0.2
    assert state.runs == [] and p.draws == 1  # sliders alone do not train
    p.train_button.click()
    assert len(state.runs) == 1 and len(state.terms) == 10
    row = state.runs[0]
    assert (row["alpha"], row["beta"], row["sigma"], row["steps"]) == (100.0, 2.0, 0.2, 10)
    assert p.progress.value == p.progress.max == 10
    assert p.draws == 2 and "run 1: 10 steps" in p.status.value
    assert not np.array_equal(samples_of(p.last_figure), before)
    now = list(state.model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(weights, now, strict=True))
    # The figure's curves hold every step; the table one row per run.
    assert len(p.last_figure.axes[1].lines[0].get_xdata()) == 10
    p.controls["steps"].value = 20
    p.train_button.click()
    assert [r["run"] for r in state.runs] == [1, 2] and len(state.terms) == 30
    assert p.table.value.count("<tr>") == 3  # header + two runs
    assert state.runs[1]["total_steps"] == 30


def test_temperature_resamples_without_training(state: PlaygroundState) -> None:
    p = playground_panel(state)
    before = samples_of(p.last_figure)
    p.controls["temperature"].value = 1.1
    assert p.draws == 2 and state.runs == [] and len(state.terms) == 0
    after = samples_of(p.last_figure)
    assert not np.array_equal(after, before)
    # The same noise is rescaled: going back to 0.7 gives the first picture again.
    p.controls["temperature"].value = 0.7
    np.testing.assert_array_equal(samples_of(p.last_figure), before)


def test_reset_restores_the_starting_model(state: PlaygroundState) -> None:
    start = {k: v.clone() for k, v in state.model.state_dict().items()}
    p = playground_panel(state, steps=10)
    first = samples_of(p.last_figure)
    p.train_button.click()
    assert len(state.runs) == 1
    p.reset_button.click()
    assert state.runs == [] and len(state.terms) == 0 and "no run yet" in p.table.value
    for k, v in state.model.state_dict().items():
        torch.testing.assert_close(v, start[k], rtol=0, atol=0)
    np.testing.assert_array_equal(samples_of(p.last_figure), first)


def test_plain_function_and_table(state: PlaygroundState) -> None:
    row = playground_train(state, alpha=10.0, beta=0.0, temperature=0.5, sigma=0.05, steps=10)
    assert state.runs == [row] and row["bpd"] > 0 and row["stopped"] == ""
    fig = playground_figure(state, temperature=0.5)
    assert "T = 0.50" in fig.axes[0].get_title()
    html = history_html(state.runs)
    assert html.count("<tr>") == 2 and f"{row['bpd']:.3f}" in html
    with pytest.raises(ValueError, match="sigma must be a finite non-negative number"):
        playground_train(state, sigma=-1.0, steps=10)
    with pytest.raises(ValueError, match="steps must be positive"):
        playground_train(state, steps=0)
    assert len(state.runs) == 1  # refused runs leave no trace


def test_refused_setting_is_reported_in_the_panel(state: PlaygroundState) -> None:
    p = playground_panel(state, steps=10)
    p.controls["temperature"].min = 0.0  # a slider cannot reach 0 in the lesson; force it here
    p.controls["temperature"].value = 0.0
    assert p.draws == 1 and "temperature must be a finite positive number" in p.status.value
    p.status.value = ""
    assert p.train() is None
    assert "temperature must be a finite positive number" in p.status.value
    assert state.runs == [] and not p.train_button.disabled


def test_defaults_are_configuration_d_and_unknown_settings_are_refused(
    state: PlaygroundState,
) -> None:
    d = CONFIGURATIONS["d"]
    assert (DEFAULTS["alpha"], DEFAULTS["beta"], DEFAULTS["sigma"]) == (d.alpha, d.beta, d.sigma)
    assert DEFAULTS["temperature"] == d.temperature and DEFAULTS["scale_noise"] is True
    p = playground_panel(state)
    assert p.values() == DEFAULTS
    with pytest.raises(ValueError, match=r"unknown settings \['gamma'\]"):
        playground_panel(state, gamma=1.0)


def test_state_refuses_images_of_another_shape(state: PlaygroundState) -> None:
    grey = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"train_images must have shape \(N, 3, 28, 28\)"):
        PlaygroundState(state.model, grey, state.test)
    with pytest.raises(ValueError, match="test_images must be a uint8 tensor"):
        PlaygroundState(state.model, state.train_images, state.test.float())
    with pytest.raises(ValueError, match="n_test must be a positive"):
        PlaygroundState(state.model, state.train_images, state.test, n_test=0)


class AlwaysSeven(torch.nn.Module):
    """A stand-in digit classifier: every image is a confident 7."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.full((len(x), 10), -20.0)
        logits[:, 7] = 20.0
        return logits


def test_runs_count_recognised_samples_when_given_a_classifier(state: PlaygroundState) -> None:
    counted = PlaygroundState(state.model, state.train_images, state.test, classifier=AlwaysSeven())
    row = playground_train(counted, steps=10)
    assert row["recognisable"] == pytest.approx(1.0 - row["sample_overflow"])
    assert "<td>100%</td>" in history_html(counted.runs)
    assert "<td>–</td>" in history_html([playground_train(state, steps=10)])  # not counted


def test_starting_model_from_scratch_is_the_playground_recipe(state: PlaygroundState) -> None:
    with pytest.raises(ValueError, match="train_images must be given"):
        starting_model(from_scratch=True)
    model = starting_model(from_scratch=True, train_images=state.train_images)
    assert model.initialized and not model.training
    assert model.config.shape == (3, 28, 28) and model.config.blocks == PLAYGROUND_MODEL.blocks
    again = starting_model(from_scratch=True, train_images=state.train_images)
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # seeded: the same fresh model


@pytest.mark.slow
def small_splits(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``image_splits(name)`` cut to the first 2,000 training and 500 test images."""
    grey = "mnist" if name == "coloured-mnist" else name
    train, test = image_splits(grey)
    train, test = train[:2000], test[:500]
    if name == "coloured-mnist":  # as coloured_splits colours them: seed 0, and 1 for the test
        return colourize(train, seed=0)[0], colourize(test, seed=1)[0]
    return train, test


def test_make_writes_a_coloured_glow_whose_figures_load_reproduces(
    tmp_path, shared_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The make path, on a model a test can afford; the learning rate drops 10-fold at step 2.
    tiny = PLAYGROUND.replace(**TINY, warmup_steps=0, lr_drop=(2, 0.1))
    monkeypatch.setitem(RECIPES, "tiny", tiny)
    monkeypatch.setattr(release, "measure_coloured_glow", lambda m: {"figures": "measured"})
    # A slice of the digits, coloured (colouring all 70,000 takes seconds the test does not need).
    monkeypatch.setattr(glow_train, "image_splits", small_splits)
    info = release.make_glow("glow-tiny", "coloured-mnist", "tiny", minutes=0.02, folder=tmp_path)
    assert info["dataset"].startswith("coloured-mnist") and info["steps"] >= 1
    assert info["figures"] == "measured" and Recipe.from_dict(info["recipe_settings"]) == tiny
    assert info["command"] == (
        "python -m course_utils.release glow-tiny --dataset coloured-mnist --recipe tiny "
        "--minutes 0.02"
    )
    model = pretrained.load("glow-tiny", tmp_path)
    assert model.config.shape == (3, 28, 28) and model.initialized
    # Continuing the run resumes its checkpoint: more steps, the same run file.
    again = release.make_glow("glow-tiny", "coloured-mnist", "tiny", minutes=0.04, folder=tmp_path)
    assert again["steps"] > info["steps"] >= 1
    run = torch.load(tmp_path / "glow-tiny.run.pt", weights_only=False)
    assert run["optimizer"]["param_groups"][0]["lr"] == pytest.approx(tiny.optimiser.lr * 0.1)
    assert run["extra"]["recipe"] == "tiny" and run["extra"]["dataset"] == "coloured-mnist"
    with pytest.raises(ValueError, match="is for 1-channel images, but coloured-mnist has 3"):
        train_glow("coloured-mnist", 0.01, "small", checkpoint=tmp_path / "x.pt")
    with pytest.raises(ValueError, match="is for 3-channel images, but mnist has 1"):
        release.make_glow("glow-x", "mnist", "playground", minutes=0.01, folder=tmp_path)
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "glow-x.run.pt").exists()


def test_the_shipped_starting_model_is_the_playground_recipe() -> None:
    model = starting_model()
    assert model.initialized and not model.training
    assert model.config == PLAYGROUND_MODEL
    info = manifest("glow-coloured-mnist")
    assert info["dataset"].startswith("coloured-mnist") and info["recipe"] == "playground"
    assert info["command"].startswith("python -m course_utils.release glow-coloured-mnist")


@pytest.mark.slow
def test_the_shipped_model_reproduces_its_manifest(shared_data) -> None:
    # The test bits/dim on all 10,000 digits is measured again by benchmarks/pretrained.py
    # (about a minute); here the last point of the held-out curve, which the training
    # measured on the final weights, and every sample figure.
    info = manifest("glow-coloured-mnist")
    model = starting_model()
    assert info["held_out_steps"][-1] == info["steps"]
    assert info["held_out_images"].startswith("the first 500 official test digits")
    # The coloured test digits of coloured_splits(seed=0), without colouring the training ones.
    test = colourize(image_splits("mnist")[1], seed=1)[0]
    held_out = model.bits_per_dim(test[:500], seed=1)
    assert held_out == pytest.approx(info["held_out_curve"][-1], abs=2e-4)
    again = coloured_sample_figures(model, test=test)
    assert again["recognisable_real_test_digits"] == info["recognisable_real_test_digits"]
    assert again["single_background_real_test_digits"] == info["single_background_real_test_digits"]
    # Sampling is seeded; a classifier's verdict near its threshold may flip with the
    # number of threads, so a share may move by a few samples in 1,000.
    assert again["recognisable_share"] == pytest.approx(info["recognisable_share"], abs=0.01)
    for t in ("T0.7", "T1.0"):
        here, there = again[f"recognisable_{t}"], info[f"recognisable_{t}"]
        assert here["share"] == pytest.approx(there["share"], abs=0.01)
        assert here["digits_drawn"] == there["digits_drawn"]
        assert here["colour_gap"] == pytest.approx(there["colour_gap"], abs=2e-3)
        assert here["single_background"] == pytest.approx(there["single_background"], abs=0.01)
