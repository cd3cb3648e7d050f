"""Inpainting by the flow alone: coordinates, likelihood ascent, the MALA sampler, latent MAP.

The sampler's oracle is a model whose posterior is known in closed form: a
Gaussian density over the pixels, whose conditional given the known pixels is
Gaussian with the textbook mean and covariance.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from course_utils import inpaint as ip
from course_utils.glow.model import BATCH_CHUNK, Glow
from course_utils.inpaint import flow as fl

pytestmark = pytest.mark.usefixtures("rng")


@pytest.fixture
def model(tiny_glow):
    """The tiny Glow: the course recipe's kind of layers and logit (α = 1e-5)."""
    return tiny_glow


@pytest.fixture
def digits(inpaint_problem):
    """Digit-like images: a bright bar on black, at bin centres."""
    return inpaint_problem.images


class GaussianPixels(nn.Module):
    """A 'flow' with a known density: pixels ``u ~ N(mean, cov)`` (4 pixels, a 2×2 image)."""

    def __init__(self) -> None:
        super().__init__()
        a = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.6, 0.8, 0.0, 0.0], [0.3, -0.4, 0.7, 0.0]])
        a = torch.cat([a, torch.tensor([[0.2, 0.5, 0.1, 0.6]])])
        self.register_buffer("mean", torch.tensor([0.5, 0.45, 0.55, 0.5]))
        self.register_buffer("cov", 0.004 * a @ a.T + 1e-4 * torch.eye(4))
        self.dummy = nn.Parameter(torch.zeros(()))  # a parameter for the freezing logic

    def dist(self) -> torch.distributions.MultivariateNormal:
        return torch.distributions.MultivariateNormal(self.mean, self.cov)

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        return self.dist().log_prob(u.flatten(1)) + 0 * self.dummy

    def conditional(self, known: torch.Tensor, hole: torch.Tensor, values: torch.Tensor):
        """Mean and covariance of the hole given the known pixels' values (the textbook formula)."""
        s = self.cov
        s_hk, s_kk = s[hole][:, known], s[known][:, known]
        gain = s_hk @ torch.linalg.inv(s_kk)
        mean = self.mean[hole] + gain @ (values - self.mean[known])
        return mean, s[hole][:, hole] - gain @ s[known][:, hole]


# ----------------------------------------------------------------- coordinates


def test_coordinates_are_the_models_logit_and_give_its_log_prob(model, digits):
    c = fl.coordinates(model)
    assert c.alpha == 1e-5 and c.low == pytest.approx(-c.high)
    u = digits[:3] * 0.9 + 0.05 * torch.rand(3, 1, 28, 28)
    y = c.to_model(u)
    torch.testing.assert_close(c.to_pixels(y), u, atol=1e-5, rtol=0)
    # The model's first layer is this logit: its own log_prob is log p_Y + log|dy/du|.
    with torch.no_grad():
        torch.testing.assert_close(c.pixel_log_prob(y), model.log_prob(u), atol=1e-2, rtol=1e-5)
    assert c.to_pixels(torch.tensor([-100.0, 100.0])).tolist() == [0.0, 1.0]


def test_a_model_without_a_logit_works_on_the_pixels():
    g = GaussianPixels()
    c = fl.coordinates(g)
    assert c.alpha is None and (c.low, c.high) == (0.0, 1.0)
    u = torch.rand(2, 1, 2, 2)
    assert torch.equal(c.to_model(u), u) and torch.equal(c.log_det(u), torch.zeros(2))
    assert torch.equal(c.pixel_log_prob(u), g.log_prob(u))
    no_logit = Glow(levels=1, blocks=1, hidden=4, logit_alpha=None)
    assert fl.coordinates(no_logit).alpha is None


# ------------------------------------------------------------ likelihood ascent


def test_ascent_changes_only_the_hole_and_climbs_to_convergence(model, digits):
    x, m = digits, ip.make_masks("centre", 4, size=10)
    res = fl.pixel_inpaint(model, x, m, steps=300, lr=0.1, tol=0.01, window=10)
    assert torch.equal(res.images[~m], x[~m])  # known pixels bit for bit
    assert res.images.min() >= 0 and res.images.max() <= 1
    with torch.no_grad():
        black = model.log_prob(ip.zero_fill(x, m))
        final = model.log_prob(res.images)
    # The trace starts at the black fill and is the model's own log p of the pixels.
    torch.testing.assert_close(res.log_prob[0], black, rtol=1e-5, atol=0.05)
    torch.testing.assert_close(res.log_prob[-1], final, rtol=1e-5, atol=0.05)
    assert (final > black).all()
    # The stopping rule: it stopped because every image rose by less than tol per pixel.
    steps = len(res.log_prob) - 1
    assert res.extra["converged"] and 10 <= steps < 300
    rise = res.log_prob[-1] - res.log_prob[-11]
    assert (rise < 0.01 * m.flatten(1).sum(1)).all()
    previous = res.log_prob[-2] - res.log_prob[-12]
    assert (previous >= 0.01 * m.flatten(1).sum(1)).any()  # and not one step earlier


def test_ascent_without_a_tolerance_takes_every_step_and_zero_steps_return_the_start(model, digits):
    x, m = digits[:2], ip.make_masks("top", 2)
    res = fl.pixel_inpaint(model, x, m, steps=4, tol=0.0)
    assert res.log_prob.shape == (5, 2) and not res.extra["converged"]
    init = torch.rand(2, 1, 28, 28)
    same = fl.pixel_inpaint(model, x, m, steps=0, init=init)
    torch.testing.assert_close(same.images, torch.where(m, init, x), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="init must have the images' shape"):
        fl.pixel_inpaint(model, x, m, steps=1, init=init[:1])
    with pytest.raises(ValueError, match="init must be"):
        fl.pixel_inpaint(model, x, m, steps=1, init="grey")
    for name, kw in [("steps", {"steps": -1}), ("lr", {"lr": 0.0}), ("tol", {"tol": -1.0})]:
        with pytest.raises(ValueError, match=name):
            fl.pixel_inpaint(model, x, m, **kw)


def test_the_model_is_left_as_it_was(model, digits):
    flags = [p.requires_grad for p in model.parameters()]
    model.train()
    fl.pixel_inpaint(model, digits, ip.make_masks("left", 4), steps=2)
    fl.posterior_inpaint(model, digits[:1], ip.make_masks("left", 1), chains=2, steps=2, warmup=1)
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    model.eval()


# ------------------------------------------------------------------ the sampler


def test_the_acceptance_ratio_is_the_metropolis_hastings_ratio_of_langevin_proposals():
    torch.manual_seed(1)
    y, prop, g, g2 = (torch.randn(3, 5) for _ in range(4))
    lp, lp2 = torch.randn(3), torch.randn(3)
    h = torch.tensor([0.1, 0.5, 2.0])
    got = fl.mala_log_acceptance(y, prop, lp, lp2, g, g2, h)
    for i in range(3):  # by hand, with torch's own Gaussian densities
        q = torch.distributions.Normal(y[i] + h[i] / 2 * g[i], h[i].sqrt())
        q_back = torch.distributions.Normal(prop[i] + h[i] / 2 * g2[i], h[i].sqrt())
        want = lp2[i] - lp[i] + q_back.log_prob(y[i]).sum() - q.log_prob(prop[i]).sum()
        torch.testing.assert_close(got[i], want, atol=1e-5, rtol=1e-5)


def test_a_mala_step_moves_only_the_hole_and_rejects_proposals_outside_the_support():
    g = GaussianPixels()
    y = torch.full((3, 1, 2, 2), 0.5)
    hole = torch.tensor([[True, False], [False, True]]).expand(3, 1, 2, 2)
    lp, grad = fl.log_prob_and_grad(g.log_prob, y, hole)
    assert (grad[~hole] == 0).all() and (grad[hole] != 0).any()
    new, lp_new, _, a = fl.mala_step(g.log_prob, y, lp, grad, hole, 1e-4, 0.0, 1.0)
    assert torch.equal(new[~hole], y[~hole]) and ((a >= 0) & (a <= 1)).all()
    torch.testing.assert_close(lp_new, g.log_prob(new))
    # A huge step lands outside [0, 1]: rejected, acceptance 0, the state stays.
    far, _, _, a = fl.mala_step(g.log_prob, y, lp, grad, hole, 100.0, 0.0, 1.0)
    assert torch.equal(far, y) and (a == 0).all()


def test_gradients_and_decodings_in_chunks_equal_one_pass(model):
    n = BATCH_CHUNK + 7  # two chunks, the second a short one
    y = torch.rand(n, 1, 28, 28)  # images in [0, 1]
    hole = torch.rand(n, 1, 28, 28) < 0.5
    lp, grad = fl.log_prob_and_grad(model.log_prob, y, hole)
    with torch.enable_grad():
        y_all = y.clone().requires_grad_(True)
        lp_all = model.log_prob(y_all)
        (grad_all,) = torch.autograd.grad(lp_all.sum(), y_all)
    torch.testing.assert_close(lp, lp_all.detach())
    torch.testing.assert_close(grad, torch.where(hole, grad_all, torch.zeros_like(grad_all)))
    z = model.sample_latents(n, 0.7)
    with torch.no_grad():
        torch.testing.assert_close(fl.decode_in_chunks(model, z), model.decode(z))


def test_the_sampler_draws_the_known_posterior_of_a_gaussian():
    g = GaussianPixels()
    known_values = torch.tensor([0.45, 0.6])
    hole = torch.tensor([False, True, False, True])  # pixels 1 and 3 missing
    x = torch.zeros(1, 1, 2, 2)
    x.view(-1)[~hole] = known_values
    mask = hole.view(1, 1, 2, 2)
    res = fl.posterior_inpaint(
        g, x, mask, chains=400, steps=150, warmup=50, step_size=1e-3, init="half",
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    mean, cov = g.conditional(~hole, hole, known_values)
    samples = res.extra["samples"][0].flatten(1)[:, hole]  # 400 independent chains' last states
    sem = (cov.diagonal() / 400).sqrt()
    assert ((samples.mean(0) - mean).abs() < 4 * sem).all()
    torch.testing.assert_close(torch.cov(samples.T), cov, atol=3e-4, rtol=0.3)
    # The estimate is the posterior mean (averaged over the steps after warm-up too).
    assert ((res.images.view(-1)[hole] - mean).abs() < 4 * sem).all()
    assert torch.equal(res.images.view(-1)[~hole], known_values)  # known pixels bit for bit
    # The step size was adapted towards MALA's optimal acceptance, then kept.
    assert abs(res.extra["acceptance"][50:].mean() - fl.TARGET_ACCEPTANCE) < 0.15
    assert res.log_prob.shape == (151, 400)


def test_the_sampler_at_a_lower_temperature_narrows_the_posterior():
    g = GaussianPixels()
    x = torch.full((1, 1, 2, 2), 0.5)
    mask = torch.tensor([False, True, False, True]).view(1, 1, 2, 2)
    gen = torch.Generator().manual_seed(1)
    runs = {
        t: fl.posterior_inpaint(
            g, x, mask, chains=300, steps=120, warmup=40, init="half", temperature=t, generator=gen
        )
        .extra["samples"][0]
        .flatten(1)[:, [1, 3]]
        for t in (1.0, 0.25)
    }
    ratio = runs[0.25].var(0) / runs[1.0].var(0)  # π^{1/T}: a Gaussian's variance times T
    assert ((ratio > 0.15) & (ratio < 0.4)).all()


def test_the_sampler_on_a_glow_keeps_the_known_pixels_and_reports_its_chains(model, digits):
    x, m = digits[:2], ip.make_masks("right", 2)
    res = fl.posterior_inpaint(
        model, x, m, chains=3, steps=6, warmup=3, latent_steps=3,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert torch.equal(res.images[~m], x[~m])
    samples, starts = res.extra["samples"], res.extra["starts"]
    assert samples.shape == starts.shape == (2, 3, 1, 28, 28)
    known = ~m[:, None].expand_as(samples)
    assert torch.equal(samples[known], x[:, None].expand_as(samples)[known])
    # The first chain starts from the latent MAP fit at z = 0, the others elsewhere.
    fit = fl.latent_inpaint(model, x, m, steps=3).images
    torch.testing.assert_close(starts[:, 0], fit, atol=1e-5, rtol=0)
    assert (starts[:, 1] - starts[:, 0]).abs().max() > 1e-3
    # The chains' log p trace is the model's log p of the pixels.
    with torch.no_grad():
        last = model.log_prob(samples.flatten(0, 1))
    torch.testing.assert_close(res.log_prob[-1], last, atol=0.5, rtol=1e-4)
    assert res.log_prob.shape == (7, 6) and res.extra["acceptance"].shape == (6,)
    # latent_lr is the learning rate of those starting fits.
    quick = fl.posterior_inpaint(
        model, x, m, chains=3, steps=2, warmup=1, latent_steps=3, latent_lr=0.2,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    fast_fit = fl.latent_inpaint(model, x, m, steps=3, lr=0.2).images
    torch.testing.assert_close(quick.extra["starts"][:, 0], fast_fit, atol=1e-5, rtol=0)
    assert (fast_fit - fit).abs().max() > 1e-3
    with pytest.raises(ValueError, match="warmup must be below steps"):
        fl.posterior_inpaint(model, x, m, steps=3, warmup=3)
    with pytest.raises(ValueError, match="chains"):
        fl.posterior_inpaint(model, x, m, chains=0)
    with pytest.raises(ValueError, match="temperature"):
        fl.posterior_inpaint(model, x, m, temperature=0.0)


# ------------------------------------------------------------------ latent MAP


def test_latent_map_keeps_the_known_pixels_and_fits_them(model, digits):
    x, m = digits, ip.make_masks("bottom", 4)
    res = fl.latent_inpaint(model, x, m, steps=8, trace_every=1)
    assert torch.equal(res.images[~m], x[~m])
    assert torch.isfinite(res.images).all() and torch.isfinite(res.log_prob).all()
    assert res.log_prob.shape == (9, 4)  # before the first step and after each
    with torch.no_grad():
        torch.testing.assert_close(
            res.log_prob[-1], model.log_prob(res.images), atol=0.05, rtol=1e-5
        )
        decoded = model.decode(res.extra["z"]).clamp(0, 1)
        start = model.decode([torch.zeros(1, *s) for s in model.latent_shapes()]).clamp(0, 1)
    torch.testing.assert_close(res.images[m], decoded[m], atol=1e-5, rtol=0)

    def misfit(img):
        return ((img - x) ** 2 * (~m)).flatten(1).sum(1)

    assert (misfit(decoded) < misfit(start.expand_as(x))).all()  # the data term went down
    assert fl.latent_inpaint(model, x, m, steps=2).log_prob.shape == (1, 4)
    other = fl.latent_inpaint(model, x, m, steps=2, spread=0.5, generator=torch.Generator())
    assert not torch.equal(other.images, fl.latent_inpaint(model, x, m, steps=2).images)
    with pytest.raises(ValueError, match="sigma"):
        fl.latent_inpaint(model, x, m, sigma=0.0)
    with pytest.raises(ValueError, match="spread"):
        fl.latent_inpaint(model, x, m, spread=-1.0)


@pytest.mark.parametrize("method", ["pixel_inpaint", "posterior_inpaint", "latent_inpaint"])
def test_every_flow_method_refuses_a_bad_mask(model, method, digits):
    with pytest.raises(ValueError, match="nothing is masked"):
        getattr(fl, method)(model, digits[:2], torch.zeros(2, 1, 28, 28, dtype=torch.bool))
    assert math.isfinite(fl.TARGET_ACCEPTANCE)


def test_multistart_fits_start_at_zero_then_at_random_latents(tiny_glow, inpaint_problem):
    x, m = inpaint_problem.images, inpaint_problem.mask
    res = fl.multistart_inpaint(
        tiny_glow, x, m, starts=3, steps=2, generator=torch.Generator().manual_seed(0)
    )
    fits = res.extra["fits"]
    assert fits.shape == (4, 3, 1, 28, 28) and res.extra["objective"].shape == (4, 3)
    assert torch.equal(
        fits[~m[:, None].expand_as(fits)], x[:, None].expand_as(fits)[~m[:, None].expand_as(fits)]
    )
    from_zero = fl.latent_inpaint(tiny_glow, x, m, steps=2).images
    torch.testing.assert_close(fits[:, 0], from_zero, atol=1e-5, rtol=0)
    assert not torch.allclose(fits[:, 1], fits[:, 2])  # different random starts, different fits
    with pytest.raises(ValueError, match="starts"):
        fl.multistart_inpaint(tiny_glow, x, m, starts=0)
