"""Oracle tests of lesson 05's modules: ``inference`` (layers, reverse KL) and ``targets``.

The references are independent of the code under test: normflows' own
``Planar`` and ``Radial``, ``torch.distributions``, and closed forms (the
normalising constants of ``U2``–``U4``, the reverse-KL optimum of a Gaussian
family). Each layer's inverse and log-determinant (the planar inverse's exact
derivatives included) are checked in ``test_invertible_layers.py``.
"""

from __future__ import annotations

import math

import normflows as nf
import pytest
import torch
from oracles import perturb

from course_utils.flows2d.flows import Flow, StandardNormal
from course_utils.flows2d.inference import (
    LocScale,
    Planar,
    Radial,
    evaluate_vi,
    fit_both_ways,
    fit_reverse_kl,
    planar_flow,
    radial_flow,
    reverse_kl,
    sample_with_log_prob,
)
from course_utils.flows2d.targets import (
    POTENTIALS,
    LogisticPosterior,
    grid_density,
    log_z_closed_form,
    logistic_data,
    soft_wall,
    two_modes,
    u1,
)

# Seeded (the forked RNG of conftest), and on one thread: tiny 2D networks run fastest so.
pytestmark = pytest.mark.usefixtures("rng", "one_thread")


def set_planar(layer: Planar, w, u, b=0.0) -> Planar:
    with torch.no_grad():
        layer.w.copy_(torch.as_tensor(w, dtype=layer.w.dtype))
        layer.u.copy_(torch.as_tensor(u, dtype=layer.u.dtype))
        layer.b.fill_(b)
    return layer


def test_planar_inverse_in_float32_is_accurate():
    layer = perturb(Planar(2), 1.0)
    z = 3 * torch.randn(1000, 2)
    torch.testing.assert_close(layer.inverse(layer(z)[0])[0], z, atol=1e-4, rtol=1e-4)


def test_planar_reparametrisation_keeps_w_dot_u_above_minus_one():
    # Raw parameters far into the forbidden region: wᵀu = −12.5.
    layer = set_planar(Planar(2).double(), [2.0, 0.0], [-6.0, 3.0], 0.5)
    assert float((layer.w @ layer.u).detach()) < -1
    w_dot_u_hat = float((layer.w @ layer.u_hat()).detach())
    assert -1 < w_dot_u_hat < -0.999  # softplus(−12.5) − 1
    # The Jacobian determinant is positive everywhere: the layer cannot fold space.
    z = 3 * torch.randn(4000, 2, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v)[0].sum(0), z).permute(1, 0, 2)
    assert bool((torch.linalg.det(jac) > 0).all())
    # Without û the same raw u folds space: the determinant 1 + tanh'·wᵀu changes sign.
    t = torch.tanh(z @ layer.w + layer.b)
    raw_det = 1 + (1 - t**2) * float((layer.w @ layer.u).detach())
    assert bool((raw_det < 0).any())
    # In the allowed region, û only moves u along w when wᵀu is small: û − u ∥ w.
    ok = set_planar(Planar(2).double(), [1.0, 0.0], [3.0, 1.0])
    diff = (ok.u_hat() - ok.u).detach()
    assert abs(float(diff[1])) < 1e-12 and float(diff[0]) != 0


def test_radial_reparametrisation_keeps_beta_above_minus_alpha():
    layer = Radial(2).double()
    with torch.no_grad():
        layer.alpha_raw.fill_(0.3)
        layer.beta_raw.fill_(-30.0)  # as contracting as allowed
    alpha, beta = float(layer.alpha().detach()), float(layer.beta().detach())
    assert alpha > 0 and beta >= -alpha and beta < -alpha + 1e-9
    # The radius map r ↦ r (1 + β / (α + r)) stays non-decreasing.
    r = torch.linspace(0, 5, 2001, dtype=torch.float64)
    mapped = r * (1 + beta / (alpha + r))
    assert bool((mapped.diff() >= 0).all())
    z = torch.randn(500, 2, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v)[0].sum(0), z).permute(1, 0, 2)
    assert bool((torch.linalg.det(jac) > 0).all())


def test_planar_matches_normflows():
    ours = perturb(Planar(2), 1.0).double()
    theirs = nf.flows.Planar((2,)).double()
    with torch.no_grad():
        theirs.w.copy_(ours.w[None])
        theirs.u.copy_(ours.u[None])
        theirs.b.copy_(ours.b[None])
    z = torch.randn(64, 2, dtype=torch.float64)
    x, log_det = ours(z)
    x_nf, log_det_nf = theirs(z)
    torch.testing.assert_close(x, x_nf)
    torch.testing.assert_close(log_det, log_det_nf)


def test_radial_matches_normflows():
    ours = perturb(Radial(2), 1.0).double()
    theirs = nf.flows.Radial((2,)).double()
    with torch.no_grad():
        theirs.z_0.copy_(ours.z0[None])
        theirs.alpha.fill_(float(ours.alpha()))  # normflows uses |alpha|
        theirs.beta.fill_(float(ours.beta_raw))  # and β = softplus(beta) − |alpha|
    z = 2 * torch.randn(64, 2, dtype=torch.float64)
    x, log_det = ours(z)
    x_nf, log_det_nf = theirs(z)
    torch.testing.assert_close(x, x_nf)
    torch.testing.assert_close(log_det, log_det_nf)


def test_loc_scale_flow_is_a_diagonal_gaussian():
    loc, scale = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    flow = Flow(StandardNormal(2), [LocScale(2, loc, scale)])
    x = 3 * torch.randn(50, 2)
    reference = torch.distributions.Normal(loc, scale).log_prob(x).sum(1)
    torch.testing.assert_close(flow.log_prob(x), reference)
    _, log_q = sample_with_log_prob(flow, 10)
    assert log_q.requires_grad  # sampling for VI keeps the graph


@pytest.mark.parametrize("build", [planar_flow, radial_flow])
def test_sampled_log_prob_agrees_with_the_inverse_direction(build):
    flow = perturb(build(8), 0.3).double()
    x, log_q = sample_with_log_prob(flow, 300, torch.Generator().manual_seed(0))
    torch.testing.assert_close(log_q, flow.log_prob(x))


@pytest.mark.parametrize("build", [planar_flow, radial_flow])
def test_flow_density_integrates_to_one(build):
    flow = perturb(build(6), 0.3).double()  # grid_density evaluates on float64 points
    grid = grid_density(flow.log_prob, (-12, 12), (-12, 12), 241)
    assert grid.log_z == pytest.approx(0.0, abs=2e-3)


def test_grid_density_of_a_gaussian_matches_the_closed_form():
    mean = torch.tensor([0.5, -1.0], dtype=torch.float64)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)
    gauss = torch.distributions.MultivariateNormal(mean, cov)
    shift = 2.5  # an unnormalised density: log Z must come out as shift
    grid = grid_density(lambda z: gauss.log_prob(z) + shift, (-7, 8), (-8, 6), 301)
    assert grid.log_z == pytest.approx(shift, abs=1e-6)
    torch.testing.assert_close(grid.mean(), mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(grid.cov(), cov, atol=1e-5, rtol=0)
    torch.testing.assert_close(grid.std(), cov.diagonal().sqrt(), atol=1e-5, rtol=0)
    other = torch.distributions.MultivariateNormal(mean + 1, 2 * cov)
    closed = torch.distributions.kl_divergence(gauss, other).item()
    assert grid.kl_to(other.log_prob) == pytest.approx(closed, abs=1e-4)


@pytest.mark.parametrize("name", ["U2", "U3", "U4"])
def test_potentials_normalise_to_their_closed_form(name):
    grid = grid_density(lambda z: -POTENTIALS[name](z), (-6, 6), (-7, 5), 500)
    assert grid.log_z == pytest.approx(log_z_closed_form(name), abs=1e-5)


def test_u1_grid_normalisation_converges():
    coarse = grid_density(lambda z: -u1(z), (-5, 5), (-5, 5), 201).log_z
    fine = grid_density(lambda z: -u1(z), (-5, 5), (-5, 5), 601).log_z
    assert coarse == pytest.approx(fine, abs=1e-4)
    assert grid_density(lambda z: -u1(z), (-5, 5), (-5, 5), 601).mean().abs().max() < 1e-6


def test_potential_values_by_hand():
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [5.0, 1.0]], dtype=torch.float64)
    # U1 at (2, 0): on the ring, at the centre of one lobe.
    expected_u1 = -math.log(1 + math.exp(-0.5 * (4 / 0.6) ** 2))
    assert float(POTENTIALS["U1"](z[:1])) == pytest.approx(expected_u1)
    # U2 at (0, 1): w1(0) = 0, so ½ (1 / 0.4)²; at (1, 1): w1(1) = 1, on the wave.
    u2 = POTENTIALS["U2"](z)
    assert float(u2[1]) == pytest.approx(0.5 * (1 / 0.4) ** 2)
    assert float(u2[2]) == pytest.approx(0.0, abs=1e-12)
    # z1 = 5 is past the wall edge by 1: the wall adds ½ (1 / 0.2)².
    assert float(soft_wall(z[3:, 0])) == pytest.approx(12.5)
    assert float(u2[3]) == pytest.approx(0.5 * ((1 - math.sin(2.5 * math.pi)) / 0.4) ** 2 + 12.5)


def test_reverse_kl_is_zero_when_q_is_the_target_and_shifts_with_log_z():
    flow = Flow(StandardNormal(2), [LocScale(2, torch.tensor([1.0, 2.0]), torch.ones(2) * 0.5)])
    target = torch.distributions.Normal(torch.tensor([1.0, 2.0]), 0.5)

    def log_p(x):
        return target.log_prob(x).sum(1)

    assert reverse_kl(flow, log_p, 500).item() == pytest.approx(0.0, abs=1e-5)
    assert reverse_kl(flow, lambda x: log_p(x) + 4.0, 500).item() == pytest.approx(-4.0, abs=1e-5)
    est = evaluate_vi(flow, lambda x: log_p(x) + 4.0, 2000)
    assert est.elbo == pytest.approx(4.0, abs=1e-5)
    assert est.log_z_is == pytest.approx(4.0, abs=1e-5)
    assert est.ess_fraction == pytest.approx(1.0, abs=1e-6)


def test_reverse_kl_optimum_of_a_diagonal_gaussian_on_a_correlated_target():
    # Closed form: the diagonal Gaussian minimising KL(q ‖ N(μ, Σ)) has the mean μ and
    # variances 1 / (Σ⁻¹)_ii, smaller than the marginal variances Σ_ii.
    mean = torch.tensor([1.0, -0.5])
    cov = torch.tensor([[1.0, 0.9], [0.9, 1.0]])
    target = torch.distributions.MultivariateNormal(mean, cov)
    flow = Flow(StandardNormal(2), [LocScale(2)])
    history = fit_reverse_kl(flow, target.log_prob, steps=600, batch_size=256, lr=0.05)
    layer = flow.layers[0]
    optimal_std = 1 / torch.linalg.inv(cov).diagonal().sqrt()
    torch.testing.assert_close(layer.loc.detach(), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(layer.log_scale.exp().detach(), optimal_std, atol=0.02, rtol=0)
    assert bool((optimal_std < cov.diagonal().sqrt() - 0.5).all())  # the check has teeth
    q = torch.distributions.Normal(mean, optimal_std)
    kl_min = 0.5 * (
        torch.logdet(cov)
        - 2 * optimal_std.log().sum()
        + (torch.linalg.inv(cov).diagonal() * optimal_std**2).sum()
        - 2
    )
    est = evaluate_vi(flow, target.log_prob, 20_000, torch.Generator().manual_seed(1))
    assert -est.elbo == pytest.approx(float(kl_min), abs=0.02)  # log Z = 0: −ELBO = KL
    assert q.entropy().sum() > 0  # (sanity of the reference itself)
    assert len(history.step_loss) == 600 and not history.stopped


def test_fit_reverse_kl_is_reproducible_and_anneals():
    def run():
        torch.manual_seed(3)
        flow = planar_flow(2)
        return fit_reverse_kl(flow, lambda z: -u1(z), steps=20, anneal_steps=10, seed=5).step_loss

    first, second = run(), run()
    assert first == second
    assert len(first) == 20


def test_logistic_posterior_matches_torch_distributions():
    x, y = logistic_data(25, intercept=-1.0, slope=2.0, seed=3)
    post = LogisticPosterior(x, y, prior_std=1.5)
    theta = torch.randn(40, 2)
    logits = theta[:, :1] + theta[:, 1:] * x
    reference = torch.distributions.Bernoulli(logits=logits).log_prob(y).sum(
        1
    ) + torch.distributions.Normal(0.0, 1.5).log_prob(theta).sum(1)
    torch.testing.assert_close(post(theta), reference)
    assert logistic_data(25, seed=3)[0].equal(x)  # seeded: the same data every time


def test_logistic_posterior_grid_mean_is_near_the_truth_with_much_data():
    x, y = logistic_data(1000, intercept=-1.0, slope=2.0, seed=0)
    grid = grid_density(LogisticPosterior(x, y), (-2, 0), (1, 3), 101)
    assert float((grid.mean() - torch.tensor([-1.0, 2.0], dtype=torch.float64)).abs().max()) < 0.2
    assert float(grid.std().max()) < 0.15


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: u1(torch.zeros(5)), r"z must have shape \(batch, 2\), got \(5,\)"),
        (lambda: POTENTIALS["U3"](torch.zeros(4, 3)), r"z must have shape \(batch, 2\), got \(4,"),
        (lambda: Planar(2)(torch.zeros(3, 3)), r"z must have shape \(batch, 2\), got \(3, 3\)"),
        (lambda: Planar(2).inverse(torch.zeros(3)), r"x must have shape \(batch, 2\), got \(3,\)"),
        (lambda: Radial(3)(torch.zeros(2, 2)), r"z must have shape \(batch, 3\), got \(2, 2\)"),
        (lambda: Radial(2).inverse(torch.zeros(1, 2, 2)), r"got \(1, 2, 2\)"),
        (lambda: LocScale(2, loc=torch.zeros(3)), r"shape \(2,\), got \(3,\)"),
        (lambda: LocScale(2, scale=torch.tensor([1.0, -1.0])), "scale must be positive"),
        (
            lambda: LogisticPosterior(torch.zeros(5), torch.zeros(4)),
            r"x and y must both have shape \(n,\), got \(5,\) and \(4,\)",
        ),
        (lambda: LogisticPosterior(torch.zeros(3), torch.tensor([0.0, 2.0, 1.0])), "0s and 1s"),
        (lambda: LogisticPosterior(torch.zeros(2), torch.zeros(2))(torch.zeros(2)), "theta"),
        (lambda: sample_with_log_prob(planar_flow(1), 0), "positive number of samples"),
        (lambda: reverse_kl(planar_flow(1), lambda z: z, 8), r"shape \(8,\), got \(8, 2\)"),
        (lambda: grid_density(lambda z: -u1(z), (-1, 1), (-1, 1), 1), "at least 2"),
        (lambda: grid_density(lambda z: -u1(z), (1, -1), (-1, 1), 10), "increasing"),
        (lambda: planar_flow(-1), "n_layers"),
        (lambda: radial_flow(0, loc_scale=False), "at least one layer"),
        (lambda: fit_reverse_kl(planar_flow(1), lambda z: -u1(z), steps=0), "positive"),
        (lambda: log_z_closed_form("U1"), "no closed form"),
        (lambda: Planar(0), "dim must be positive"),
        (lambda: fit_both_ways(two_modes(4.0), steps=0), "steps"),
    ],
)
def test_bad_inputs_give_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_two_modes_sit_where_asked_and_are_normalised() -> None:
    p = two_modes(3.0, std=0.4, centre=1.0)
    assert p.component_distribution.mean.tolist() == [[-0.5, 0.0], [2.5, 0.0]]
    grid = grid_density(p.log_prob, (-4.0, 6.0), (-3.0, 3.0), n=300)
    assert abs(grid.log_z) < 1e-4  # a proper density: Z = 1
    torch.testing.assert_close(grid.mean(), torch.tensor([1.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="separation"):
        two_modes(-1.0)
    with pytest.raises(ValueError, match="std"):
        two_modes(2.0, std=0.0)


def test_fit_both_ways_reverse_kl_seeks_one_mode_forward_kl_covers_both() -> None:
    target = two_modes(6.0)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    fits = fit_both_ways(target, steps=300, seed=0)
    torch.testing.assert_close(torch.rand(3), expected)  # the caller's random stream is kept
    left = {}
    for label, flow in fits.items():
        x = flow.sample(4000, generator=torch.Generator().manual_seed(1))
        left[label] = (x[:, 0] < -1.0).float().mean().item()  # -1: half-way between the modes
    assert min(left["reverse KL"], 1 - left["reverse KL"]) < 0.05  # one mode only
    assert 0.25 < left["forward KL"] < 0.75  # both modes
