"""Oracle tests of lesson 03's normflows models and moon measures (``flows2d.models2d``).

The normflows models are checked against lesson 02's from-scratch flows (same
weights must give the same numbers in both directions), against
``torch.distributions`` where the density is known in closed form, and the moon
measures against distances worked out by hand. Their inverses and
log-determinants are checked in ``test_invertible_layers.py``.
Flows start at (or near) the identity, which would hide most bugs, so the tests
first move every parameter away from its initial value.
"""

from __future__ import annotations

import math

import normflows as nf
import pytest
import torch
from oracles import perturb

from course_utils.core.data import moons
from course_utils.flows2d import flows
from course_utils.flows2d.flows import MoonsRecipe
from course_utils.flows2d.models2d import (
    CouplingNet,
    bridge_density,
    copy_from_scratch,
    fit_moons,
    gaussian_mixture,
    moons_log_prob,
    realnvp_nf,
    spline_flow,
)

# Every test here runs under the seeded, forked RNG of conftest.
pytestmark = pytest.mark.usefixtures("rng")


MODELS = {
    "realnvp linear": lambda: realnvp_nf(2, n_couplings=4, hidden=16, mixing="linear"),
    "realnvp permutation": lambda: realnvp_nf(2, n_couplings=4, hidden=16, mixing="permutation"),
    "realnvp 3d": lambda: realnvp_nf(3, n_couplings=3, hidden=16, mixing="linear"),
    "realnvp mixture base": lambda: realnvp_nf(
        2, n_couplings=2, hidden=16, base=gaussian_mixture()
    ),
    "spline": lambda: spline_flow(2, n_layers=3, hidden=16, n_blocks=1),
}


def make_model(name: str) -> nf.NormalizingFlow:
    return perturb(MODELS[name]()).double()


def run_layers(model: nf.NormalizingFlow, v: torch.Tensor, inverse: bool = False):
    """Run the flow layer by layer, summing log-dets in ``v``'s dtype.

    ``NormalizingFlow.forward_and_log_det``, ``inverse_and_log_det`` and
    ``forward_kld`` sum into a float32 buffer even for a float64 model, which would
    blur these float64 checks (``log_prob`` sums in the input's dtype).
    """
    log_det = torch.zeros(len(v), dtype=v.dtype)
    layers = reversed(model.flows) if inverse else model.flows
    for layer in layers:
        v, ld = layer.inverse(v) if inverse else layer(v)
        log_det = log_det + ld
    return v, log_det


# ------------------------------------------------- the lesson-02 oracle


@pytest.mark.parametrize("mixing", ["linear", "permutation"])
@pytest.mark.parametrize("dim", [2, 3])
def test_same_weights_give_the_same_numbers_as_lesson_02(mixing, dim):
    source = perturb(flows.realnvp(dim, n_couplings=5, hidden=16, mixing=mixing)).double()
    target = realnvp_nf(dim, n_couplings=5, hidden=16, mixing=mixing).double()
    x = 1.5 * torch.randn(64, dim, dtype=torch.float64)
    assert not torch.allclose(target.log_prob(x), source.log_prob(x), atol=1e-3)
    copy_from_scratch(target, source)
    # inverse direction: density and latent; forward direction: samples and log-det
    torch.testing.assert_close(target.log_prob(x), source.log_prob(x))
    # forward_kld sums in float32 whatever the model's dtype (see run_layers)
    torch.testing.assert_close(
        target.forward_kld(x).double(), source.forward_kld(x), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(target.inverse(x), source.inverse(x)[0])
    torch.testing.assert_close(run_layers(target, x), source.forward(x))
    torch.testing.assert_close(run_layers(target, x, inverse=True), source.inverse(x))


def test_permutations_are_lesson_02s():
    source = flows.realnvp(2, n_couplings=8, mixing="permutation")
    target = realnvp_nf(2, n_couplings=8, mixing="permutation")
    ours = [layer.perm.tolist() for layer in source.layers if isinstance(layer, flows.Permutation)]
    theirs = [f.perm.tolist() for f in target.flows if isinstance(f, nf.flows.Permute)]
    assert ours == theirs and [1, 0] in ours and [0, 1] in ours


def test_copy_rejects_mismatched_models():
    with pytest.raises(ValueError, match="matching layers"):
        copy_from_scratch(realnvp_nf(n_couplings=3), flows.realnvp(n_couplings=2))
    with pytest.raises(ValueError, match="InvertibleLinear.*Permute"):
        copy_from_scratch(realnvp_nf(mixing="permutation"), flows.realnvp(mixing="linear"))
    with pytest.raises(ValueError, match="coupling networks differ"):
        copy_from_scratch(realnvp_nf(hidden=8), flows.realnvp(hidden=16))


# ------------------------------------------------------- the model's API


@pytest.mark.parametrize("name", MODELS)
def test_forward_and_inverse_run_the_layers_in_order(name):
    model = make_model(name)
    dim = 3 if "3d" in name else 2
    z = torch.randn(64, dim, dtype=torch.float64)
    x, _ = run_layers(model, z)
    assert (x - z).abs().max() > 0.1, "the flow should not be the identity after perturbing"
    torch.testing.assert_close(model.forward(z), x)
    torch.testing.assert_close(model.inverse(x), run_layers(model, x, inverse=True)[0])


def test_spline_is_the_identity_outside_its_tail_bound():
    # Outside [-B, B] the splines have linear tails of slope 1, whatever their knots,
    # and the LU layers start as the identity: far points pass through unchanged.
    model = spline_flow(2, n_layers=2, hidden=8, n_blocks=1, tail_bound=2.0).double()
    for layer in model.flows:
        if isinstance(layer, nf.flows.LULinearPermute):
            layer.permutation._permutation.copy_(torch.arange(2))
        else:
            perturb(layer)  # random knots inside [-B, B]
    x = torch.tensor([[5.0, -7.0], [-4.0, 9.0]], dtype=torch.float64)
    z, log_det = run_layers(model, x, inverse=True)
    torch.testing.assert_close(z, x)
    assert log_det.abs().max() < 1e-6  # the LU diagonal starts at 1 up to float32 rounding
    inside = torch.tensor([[0.5, -0.3]], dtype=torch.float64)  # and inside they do act
    assert (model.inverse(inside) - inside).abs().max() > 1e-3


# ------------------------------------------------------ closed forms


@pytest.mark.parametrize("mixing", ["linear", "permutation"])
def test_fresh_realnvp_is_the_standard_normal(mixing):
    # Couplings start as the identity; the mixing layers are orthogonal or permutations,
    # which leave N(0, I) unchanged: the fresh model's density is N(0, I) exactly.
    model = realnvp_nf(2, mixing=mixing)
    x = 2 * torch.randn(100, 2)
    reference = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    torch.testing.assert_close(model.log_prob(x), reference.log_prob(x), atol=1e-5, rtol=1e-5)
    assert sum(p.numel() for p in model.q0.parameters()) == 0  # a fixed base, as in lesson 02


def test_gaussian_mixture_matches_torch_distributions():
    base = perturb(gaussian_mixture(3, 2, spread=2.0), scale=0.3)
    weights = torch.softmax(base.weight_scores[0], 0)
    reference = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=weights),
        torch.distributions.Independent(
            torch.distributions.Normal(base.loc[0], base.log_scale[0].exp()), 1
        ),
    )
    z = 3 * torch.randn(50, 2)
    torch.testing.assert_close(base.log_prob(z), reference.log_prob(z))
    samples, log_q = base(10_000)
    assert samples.dtype == torch.float32 and base.loc.dtype == torch.float32
    torch.testing.assert_close(log_q, reference.log_prob(samples))
    # the samples have the mixture's mean (5 standard errors of slack)
    mean, std = reference.mean, reference.variance.sqrt()
    assert ((samples.mean(0) - mean).abs() < 5 * std / math.sqrt(10_000)).all()


def test_gaussian_mixture_start():
    base = gaussian_mixture(2, 2, spread=1.5)
    torch.testing.assert_close(base.loc[0], torch.tensor([[-1.5, 0.0], [1.5, 0.0]]))
    assert [p.requires_grad for p in base.parameters()] == [True, True, True]
    assert len(list(gaussian_mixture(2, 2, trainable=False).parameters())) == 0
    torch.testing.assert_close(gaussian_mixture(1, 2).loc[0], torch.zeros(1, 2))


def test_sample_log_q_is_log_prob_of_the_samples():
    # sample() runs forward (latent -> data) and tracks the density on the way;
    # log_prob() runs inverse (data -> latent): the two must agree.
    for name in MODELS:
        model = make_model(name)
        x, log_q = model.sample(200)
        torch.testing.assert_close(log_q, model.log_prob(x), msg=name)


def test_coupling_net_layout_is_shift_then_log_scale():
    net = perturb(CouplingNet(1, 2, hidden=8))
    kept = torch.randn(6, 1)
    out = net(kept)
    raw, shift = net.net(kept).chunk(2, dim=1)
    torch.testing.assert_close(out[:, 0::2], shift)  # what nf.flows.AffineCoupling shifts by
    torch.testing.assert_close(out[:, 1::2], net.s_scale * torch.tanh(raw))
    assert (out[:, 1::2].abs() <= net.s_scale.abs() + 1e-6).all()  # the log-scale is bounded


# ----------------------------------------------------------- moons


def test_moons_log_prob_integrates_to_one_and_matches_the_data():
    xs = torch.linspace(-2.0, 3.0, 201, dtype=torch.float64)
    ys = torch.linspace(-1.5, 2.0, 141, dtype=torch.float64)
    grid = torch.cartesian_prod(xs, ys)
    cell = (xs[1] - xs[0]) * (ys[1] - ys[0])  # 0.025: a quarter of the noise's scale
    mass = moons_log_prob(grid, n_arc=200).exp().sum() * cell
    assert mass.item() == pytest.approx(1.0, abs=2e-3)
    # Its density is the one make_moons samples from: the mean log-density of the data is the
    # negative entropy, whatever the model; a wrong noise scale gives the data a lower one.
    data, _ = moons(n_train=5_000, n_test=1, noise=0.1, seed=7)
    right = moons_log_prob(data, n_arc=200).mean()
    assert right > moons_log_prob(data, noise=0.12, n_arc=200).mean()
    assert right > moons_log_prob(data, noise=0.08, n_arc=200).mean()


def test_moons_log_prob_is_a_mixture_of_gaussians_along_the_arcs():
    x = torch.randn(50, 2, dtype=torch.float64)
    theta = torch.linspace(0, math.pi, 3, dtype=torch.float64)
    centres = torch.cat(
        [
            torch.stack([torch.cos(theta), torch.sin(theta)], 1),
            torch.stack([1 - torch.cos(theta), 0.5 - torch.sin(theta)], 1),
        ]
    )
    mixture = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(torch.ones(6, dtype=torch.float64)),
        torch.distributions.Independent(torch.distributions.Normal(centres, 0.2), 1),
    )
    torch.testing.assert_close(moons_log_prob(x, noise=0.2, n_arc=3), mixture.log_prob(x))


def test_bridge_density_is_the_saddle_of_two_bumps_and_of_a_ridge():
    def bumps(x, ridge=0.0):
        mix = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(torch.ones(2)),
            torch.distributions.Independent(
                torch.distributions.Normal(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), 0.3), 1
            ),
        )
        # an optional ridge along y = 0 of height `ridge` between the bumps
        return torch.log(mix.log_prob(x).exp() + ridge * torch.exp(-(x[:, 1] ** 2) / 0.01))

    args = ((-1.0, 0.0), (1.0, 0.0), (-2.0, 2.0), (-2.0, 2.0), 201)
    saddle = math.exp(bumps(torch.zeros(1, 2)).item())  # by symmetry, at the origin
    assert bridge_density(bumps, *args) == pytest.approx(saddle, rel=1e-5)
    with_ridge = bridge_density(lambda x: bumps(x, ridge=0.5), *args)
    assert with_ridge == pytest.approx(saddle + 0.5, rel=1e-5)  # the ridge lifts the pass
    # a flat density: every path is as good, the pass is the density itself
    low_everywhere = bridge_density(lambda x: torch.zeros(len(x)), *args)
    assert low_everywhere == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.zeros(5), r"x must have shape \(batch, 2\), got \(5,\)"),
        (torch.zeros(5, 3), r"x must have shape \(batch, 2\), got \(5, 3\)"),
        ([[0.0, 1.0]], r"x must have shape \(batch, 2\), got list"),
    ],
)
def test_moons_log_prob_rejects_bad_points(bad, match):
    with pytest.raises(ValueError, match=match):
        moons_log_prob(bad)


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match=r"b must lie in the window"):
        bridge_density(lambda x: torch.zeros(len(x)), b=(5.0, 0.0))
    with pytest.raises(ValueError, match="noise"):
        moons_log_prob(torch.zeros(1, 2), noise=0.0)
    with pytest.raises(ValueError, match="mixing"):
        realnvp_nf(mixing="shuffle")
    with pytest.raises(ValueError, match="n_couplings"):
        realnvp_nf(n_couplings=0)
    with pytest.raises(ValueError, match="dim must be at least 2"):
        realnvp_nf(dim=1)
    with pytest.raises(ValueError, match="n_layers"):
        spline_flow(n_layers=0)
    with pytest.raises(ValueError, match="n_modes"):
        gaussian_mixture(0)
    with pytest.raises(ValueError, match=r"kept must have shape \(batch, 1\), got \(4, 2\)"):
        CouplingNet(1, 1)(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"train_x must have shape \(batch, 2\), got \(10, 3\)"):
        fit_moons(realnvp_nf(), torch.zeros(10, 3), torch.zeros(10, 2))


# ---------------------------------------------------------- training


def test_fit_moons_lowers_held_out_nll(one_thread):
    train_x, test_x = moons(n_train=2000, n_test=1000)
    recipe = MoonsRecipe(n_train=2000, batch_size=256, epochs=25)  # 8 steps an epoch: 200 steps
    model = realnvp_nf(2, n_couplings=4, hidden=32, mixing="linear")
    with torch.no_grad():
        before = float(model.forward_kld(test_x))
    history = fit_moons(model, train_x, test_x, recipe)
    after = history.eval[-1]
    assert history.steps == 200 and len(history.eval) == 25
    assert before > 2.0  # N(0, I) fits the moons badly
    assert after < 1.65 and after < before - 0.8  # seed 0 reaches about 1.53 in these 200 steps
    assert after > 0.95  # below the data's entropy (about 1.00 nats) would mean a bug
