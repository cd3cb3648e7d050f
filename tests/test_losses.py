"""Lesson 09's composite loss and coloured MNIST, against hand computations and normflows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from oracles import perturb

from course_utils.composite.finetune import TermHistory, evaluate, fit
from course_utils.composite.losses import (
    LossConfig,
    base_noise,
    channel_mean_gap,
    channel_means,
    composite_loss,
    dequantized,
    log_prob_and_latents,
    nll_term,
    perturbed_reconstruction,
    sample_with_grad,
)
from course_utils.composite.measure import ink
from course_utils.core.data import (
    BACKGROUNDS,
    FOUR_BACKGROUND_PROBS,
    FOUR_BACKGROUNDS,
    STROKES,
    coloured_splits,
    colourize,
)
from course_utils.core.metrics import bits_per_dim
from course_utils.glow.model import Glow, GlowConfig, dequantize
from course_utils.glow.recipes import Optimiser, Recipe, Schedule

pytestmark = pytest.mark.usefixtures("rng")

TINY = {"shape": (3, 28, 28), "levels": 2, "blocks": 1, "hidden": 8, "logit_alpha": 0.05}
#: The shared tiny Glow (conftest) with these settings: 3 channels, normflows' own couplings.
CONV = {"shape": (3, 28, 28), "net": "conv", "logit_alpha": 0.05}


def digits(n: int, generator: torch.Generator) -> torch.Tensor:
    """Fake grey digits: a bright square of random size on a black background."""
    images = torch.zeros(n, 28, 28, dtype=torch.uint8)
    for i in range(n):
        size = int(torch.randint(4, 14, (1,), generator=generator))
        images[i, 14 - size : 14 + size, 14 - size // 2 : 14 + size // 2] = 255
    return images


@pytest.fixture
def model(make_tiny_glow) -> Glow:
    """A tiny 3-channel Glow (the shared one, with normflows' couplings), moved off the identity."""
    return perturb(make_tiny_glow(**CONV), 0.05)


@pytest.fixture
def batch(rng: torch.Generator) -> torch.Tensor:
    return dequantize(colourize(digits(6, rng), seed=3)[0], rng)


# ------------------------------------------------------------ coloured MNIST


def test_colourize_is_deterministic_and_shaped(rng: torch.Generator) -> None:
    grey = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8, generator=rng)
    a, bg, fg = colourize(grey, seed=7)
    b, _, _ = colourize(grey[:, None], seed=7)  # with or without a channel axis
    c, _, _ = colourize(grey, seed=8)
    assert a.shape == (50, 3, 28, 28) and a.dtype == torch.uint8
    assert a.numpy().tobytes() == b.numpy().tobytes()
    assert not torch.equal(a, c)
    assert bg.shape == fg.shape == (50,)


@pytest.mark.parametrize("four", [False, True], ids=["one background", "four backgrounds"])
def test_colour_means_follow_the_design(rng: torch.Generator, four: bool) -> None:
    grey = digits(400, rng)
    backgrounds, probs = (
        (FOUR_BACKGROUNDS, FOUR_BACKGROUND_PROBS) if four else (BACKGROUNDS, (1.0,))
    )
    rgb, bg, fg = colourize(grey, 0, backgrounds, probs)
    ink = grey.float().mean((1, 2)) / 255
    palette_bg = torch.tensor(backgrounds, dtype=torch.float32)[bg]
    palette_fg = torch.tensor(STROKES, dtype=torch.float32)[fg]
    expected = palette_bg + (palette_fg - palette_bg) * ink[:, None]  # (N, 3), in 0..255
    measured = rgb.float().mean((2, 3))
    # Only rounding to 8 bits separates the two.
    assert (measured - expected).abs().max() <= 0.5 + 1e-4
    # The backgrounds are drawn with the stated probabilities (400 draws: a few percent).
    freq = torch.bincount(bg, minlength=len(backgrounds)).float() / len(bg)
    assert torch.allclose(freq, torch.tensor(probs), atol=0.07)


def test_colourize_refuses_probabilities_that_do_not_fit() -> None:
    grey = torch.zeros(2, 28, 28, dtype=torch.uint8)
    with pytest.raises(ValueError, match="positive probability, summing to 1"):
        colourize(grey, 0, FOUR_BACKGROUNDS, (0.5, 0.5))
    with pytest.raises(ValueError, match="positive probability, summing to 1"):
        colourize(grey, 0, FOUR_BACKGROUNDS, (0.5, 0.5, 0.5, -0.5))


def test_coloured_splits_on_real_digits(shared_data) -> None:
    train, test = coloured_splits("mnist", seed=0, root=shared_data)
    assert train.shape == (60_000, 3, 28, 28) and test.shape == (10_000, 3, 28, 28)
    assert train.dtype == test.dtype == torch.uint8
    again, _ = coloured_splits("mnist", seed=0, root=shared_data)
    assert torch.equal(train, again)
    # By design the mean colour is far from grey: blue above green above red.
    r, g, b = channel_means(train.float() / 255).tolist()
    assert b > g + 0.03 and g > r + 0.03


def test_colourize_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        colourize(torch.rand(2, 28, 28))
    with pytest.raises(ValueError, match=r"got \(2, 3, 28, 28\)"):
        colourize(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))


# ------------------------------------------------------------------- terms


def test_nll_term_equals_log_prob_and_bits_per_dim(model: Glow, batch: torch.Tensor) -> None:
    log_p, z = log_prob_and_latents(model, batch)
    reference = model.log_prob(batch).detach()
    torch.testing.assert_close(log_p, reference, rtol=1e-5, atol=1e-3)  # summation order
    torch.testing.assert_close(
        nll_term(log_p, model.num_dims, scaled=False), -log_p.mean(), rtol=0, atol=0
    )
    scaled = nll_term(log_p, model.num_dims, scaled=True).detach()
    assert float(scaled) == pytest.approx(bits_per_dim(reference, model.num_dims), rel=1e-5)
    by_hand = float(-reference.mean()) / (2352 * math.log(2)) + 8
    assert float(scaled) == pytest.approx(by_hand, rel=1e-5)
    # The latents are the encoder's.
    for a, b in zip(z, model.encode(batch), strict=True):
        torch.testing.assert_close(a, b)


def test_reconstruction_is_round_off_at_zero_sigma_and_grows(
    model: Glow, batch: torch.Tensor, rng: torch.Generator
) -> None:
    with torch.no_grad():
        zero = float(perturbed_reconstruction(model, batch, 0.0, generator=rng))
        small = float(perturbed_reconstruction(model, batch, 0.05, generator=rng))
        large = float(perturbed_reconstruction(model, batch, 0.3, generator=rng))
    assert zero < 1e-10
    assert 0 < small < large


def test_channel_mean_gap_against_hand_computation(rng: torch.Generator) -> None:
    x = torch.rand(5, 3, 4, 6, generator=rng)
    y = torch.rand(7, 3, 2, 2, generator=rng)  # other batch and image sizes
    xs, ys = x.numpy(), y.numpy()
    mu_x = [np.mean(xs[:, c]) for c in range(3)]
    mu_y = [np.mean(ys[:, c]) for c in range(3)]
    by_hand = math.sqrt(sum((a - b) ** 2 for a, b in zip(mu_x, mu_y, strict=True)))
    assert float(channel_mean_gap(x, y)) == pytest.approx(by_hand, rel=1e-5)
    assert float(channel_mean_gap(x, x)) == 0.0


def test_sample_with_grad_matches_normflows_sampler(model: Glow) -> None:
    # The same global random stream gives normflows' samples and ours.
    torch.manual_seed(11)
    with torch.no_grad():
        reference, _ = model.flow.sample(4, temperature=0.6)
    torch.manual_seed(11)
    ours = sample_with_grad(model, 4, 0.6, scale_noise=True)
    torch.testing.assert_close(ours.detach(), reference)
    assert ours.requires_grad


def test_base_noise_lengths(model: Glow, rng: torch.Generator) -> None:
    d = model.num_dims
    for scale, expected in [(False, 0.7), (True, 0.7 * math.sqrt(d))]:
        noise = base_noise(model, 200, 0.7, scale_noise=scale, generator=rng)
        assert [tuple(e.shape[1:]) for e in noise] == model.latent_shapes()
        length = torch.cat([e.flatten(1) for e in noise], 1).norm(dim=1)
        if scale:  # concentration of measure: within a few percent of T sqrt(D)
            assert float(length.mean()) == pytest.approx(expected, rel=0.02)
        else:
            torch.testing.assert_close(length, torch.full((200,), expected))


@pytest.mark.parametrize("term", ["nll", "recon", "channel"])
def test_gradients_reach_the_model_through_every_term(
    model: Glow, batch: torch.Tensor, rng: torch.Generator, term: str
) -> None:
    terms = composite_loss(model, batch, LossConfig(alpha=1.0, beta=1.0, sigma=0.1), rng)
    getattr(terms, term).backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    flow = [g for n, g in grads.items() if n.startswith("flow.flows") and g is not None]
    assert flow and any(float(g.abs().sum()) > 0 for g in flow), f"{term}: no gradient in flows"
    if term != "recon":  # R never touches the base distribution's parameters
        base = [g for n, g in grads.items() if n.startswith("flow.q0") and g is not None]
        assert any(float(g.abs().sum()) > 0 for g in base), f"{term}: no gradient in the base"


def test_composite_loss_adds_the_weighted_terms(model: Glow, batch: torch.Tensor) -> None:
    config = LossConfig(alpha=100.0, beta=2.0, sigma=0.1)
    terms = composite_loss(model, batch, config, torch.Generator().manual_seed(5))
    # Recompute every term independently with the same random draws.
    g = torch.Generator().manual_seed(5)
    log_p = model.log_prob(batch)
    recon = perturbed_reconstruction(model, batch, 0.1, generator=g)
    gap = channel_mean_gap(batch, sample_with_grad(model, config.n_samples, 0.7, True, g))
    expected = -log_p.mean() / (2352 * math.log(2)) + 8 + 100 * recon + 2 * gap
    torch.testing.assert_close(terms.total, expected, rtol=1e-5, atol=1e-6)
    plain = composite_loss(model, batch, LossConfig(), torch.Generator().manual_seed(5))
    torch.testing.assert_close(plain.total, plain.nll)


def test_bad_settings_and_inputs_are_refused(model: Glow, batch: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="alpha must be a finite non-negative number, got -1"):
        LossConfig(alpha=-1.0)
    with pytest.raises(ValueError, match="beta must be a finite"):
        LossConfig(beta=float("nan"))
    with pytest.raises(ValueError, match="temperature must be a finite positive"):
        LossConfig(temperature=0.0)
    with pytest.raises(ValueError, match="sigma"):
        perturbed_reconstruction(model, batch, -0.1)
    with pytest.raises(ValueError, match=r"x_hat must have shape \(batch, 3, H, W\), got \(2, 1"):
        channel_mean_gap(batch, torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"x must have shape .*got \(3, 28, 28\)"):
        channel_means(torch.rand(3, 28, 28))
    bad = batch.clone()
    bad[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        composite_loss(model, bad, LossConfig())
    with pytest.raises(ValueError, match=r"shape \(batch, 3, 28, 28\), got \(2, 1, 28, 28\)"):
        composite_loss(model, torch.rand(2, 1, 28, 28), LossConfig())
    with pytest.raises(ValueError, match="log_p must have shape"):
        nll_term(torch.zeros(2, 2), 10)


def test_fit_logs_every_term_and_evaluate_measures(model: Glow, rng: torch.Generator) -> None:
    images = colourize(digits(64, rng))[0]
    recipe = Recipe(GlowConfig(**TINY), Optimiser("adam", lr=1e-3), Schedule(warmup_steps=1))
    optimizer, scheduler = recipe.make_optimizer(model)
    terms, history = fit(model, images, LossConfig(alpha=10.0, beta=1.0), 3, optimizer, scheduler)
    assert isinstance(terms, TermHistory) and len(terms) == history.steps == 3
    assert all(math.isfinite(v) for v in terms.total + terms.nll + terms.recon + terms.channel)
    assert terms.total == history.step_loss
    test = dequantize(images[:16], torch.Generator().manual_seed(1))
    result = evaluate(model, test, temperature=0.7, sigma=0.1, n_samples=32)
    assert result["bpd"] == pytest.approx(model.bits_per_dim(test), rel=1e-6)
    assert len(result["channel_error"]) == 3
    assert result["channel_gap"] == pytest.approx(
        math.sqrt(sum(e * e for e in result["channel_error"])), rel=1e-6
    )
    assert 0 <= result["recon_overflow"] <= 1 and result["recon"] > 0


def test_evaluate_counts_overflowing_reconstructions(model: Glow, batch: torch.Tensor) -> None:
    sane = evaluate(model, batch, sigma=0.01, n_samples=8)
    assert sane["recon_overflow"] == 0.0 and math.isfinite(sane["recon"])
    # A latent step of 1e30 overflows every reconstruction.
    wild = evaluate(model, batch, sigma=1e30, n_samples=8)
    assert wild["recon_overflow"] == 1.0 and math.isnan(wild["recon"])


# ----------------------------------------------- 8-bit images and the dequantizer


def test_eight_bit_images_are_scored_with_the_dequantization_bound(rng: torch.Generator) -> None:
    model = Glow(**{**TINY, "dequantizer": 1, "dequantizer_hidden": 4, "logit_alpha": 1e-5})
    images = colourize(digits(6, rng), seed=1)[0]
    with torch.no_grad():
        model.initialize(dequantize(images, rng))
        perturb(model, 0.05)  # a dequantizer that is no longer uniform
    terms = composite_loss(model, images, LossConfig(), torch.Generator().manual_seed(3))
    bound = model.dequantized_log_prob(images, torch.Generator().manual_seed(3))
    assert float(terms.nll.detach()) == pytest.approx(bits_per_dim(bound.detach(), 2352), rel=1e-5)
    u, log_q = dequantized(model, images, torch.Generator().manual_seed(3))
    assert float(log_q.detach().abs().sum()) > 0  # a learned noise density, not the uniform one
    v = u.detach() * 256 - images.float()  # u = (k + v) / 256 with v in (0, 1)
    assert float(v.min()) > -1e-3 and float(v.max()) < 1 + 1e-3
    terms.nll.backward()  # the NLL trains the dequantizer too
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.dequantizer.parameters()
    )
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3, 28, 28\)"):
        composite_loss(model, images[:, :1], LossConfig())


def test_evaluate_on_eight_bit_images_matches_bits_per_dim(
    model: Glow, rng: torch.Generator
) -> None:
    images = colourize(digits(12, rng), seed=2)[0]
    result = evaluate(model, images, n_samples=8, seed=0, batch_size=5)
    # evaluate dequantizes with a noise seeded with seed + 1, as bits_per_dim does with seed=1.
    assert result["bpd"] == pytest.approx(
        model.bits_per_dim(images, batch_size=5, seed=1), rel=1e-6
    )
    by_hand = channel_means(dequantize(images, torch.Generator().manual_seed(1)))
    samples = sample_with_grad(model, 8, 0.7, True, torch.Generator().manual_seed(0))
    gap = (by_hand - channel_means(samples.detach().clamp(0, 1))).abs()
    torch.testing.assert_close(torch.tensor(result["channel_error"]), gap, rtol=1e-4, atol=1e-6)


def test_ink_recovers_the_grey_digits(rng: torch.Generator) -> None:
    grey = digits(20, rng)  # full-ink squares: the largest distance is the stroke's
    grey[:, 10:12, 13:15] = 128  # and some half ink
    rgb = colourize(grey, seed=4)[0].float() / 255
    recovered = ink(rgb)
    assert recovered.shape == (20, 1, 28, 28)
    torch.testing.assert_close(recovered[:, 0], grey.float() / 255, rtol=0, atol=0.02)
    # Any background: a flat image has no ink at all.
    assert float(ink(torch.full((2, 3, 28, 28), 0.4)).abs().max()) == 0.0
    with pytest.raises(ValueError, match="images must have shape"):
        ink(torch.rand(28, 28))
