"""Oracle tests of the from-scratch flow layers in ``course_utils.flows2d.flows``.

Inverse and log-determinant of every layer (and of a whole ``realnvp``) are
checked in ``test_invertible_layers.py``. Here: each layer's own structure
(a triangular coupling, an LU matrix), and a flow's ``log_prob`` against
``torch.distributions`` where the answer is known in closed form.
Layers start at (or near) the identity, which would hide most bugs, so every
test first moves the parameters away from their initial values.
"""

from __future__ import annotations

import math

import pytest
import torch
from oracles import perturb, short_moons_training

from course_utils.flows2d.flows import (
    MOONS_RECIPE,
    AffineCoupling,
    Flow,
    InvertibleLinear,
    MoonsRecipe,
    Permutation,
    StandardNormal,
    alternating_masks,
    realnvp,
)

# Every test here runs under the seeded, forked RNG of conftest.
pytestmark = pytest.mark.usefixtures("rng")


def test_coupling_jacobian_is_triangular_and_keeps_masked_coordinates():
    layer = perturb(AffineCoupling([1, 0], hidden=16)).double()
    z = torch.randn(16, 2, dtype=torch.float64)
    x, _ = layer(z)
    torch.testing.assert_close(x[:, 0], z[:, 0])  # the kept coordinate passes through
    jac = torch.autograd.functional.jacobian(lambda v: layer(v)[0].sum(0), z).permute(1, 0, 2)
    assert torch.all(jac[:, 0, 1] == 0)  # ∂x1/∂z2 = 0: lower triangular
    assert torch.all(jac[:, 1, 0].abs() > 0)  # ∂x2/∂z1 ≠ 0: the conditioner is used


def test_invertible_linear_log_det_matches_slogdet_of_its_matrix():
    layer = perturb(InvertibleLinear(5, seed=1)).double()
    sign, logabs = torch.linalg.slogdet(layer.weight())
    assert sign != 0
    torch.testing.assert_close(layer.log_s.sum(), logabs)


def test_permutation_in_2d_is_identity_or_swap():
    perms = {tuple(Permutation(2, seed=s).perm.tolist()) for s in range(20)}
    assert perms == {(0, 1), (1, 0)}


def test_flow_log_prob_of_a_linear_flow_is_a_gaussian():
    # x = W z with z ~ N(0, I) is N(0, W Wᵀ): an answer independent of our code.
    layer = perturb(InvertibleLinear(2, seed=0), scale=0.5).double()
    flow = Flow(StandardNormal(2), [Permutation(2, seed=1), layer]).double()
    w = layer.weight().detach()[:, [1, 0]]  # the permutation swaps the columns
    gaussian = torch.distributions.MultivariateNormal(
        torch.zeros(2, dtype=torch.float64), covariance_matrix=w @ w.T
    )
    x = 2 * torch.randn(100, 2, dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(x), gaussian.log_prob(x))
    torch.testing.assert_close(flow.forward_kld(x), -gaussian.log_prob(x).mean())


def test_flow_log_prob_by_hand_for_a_known_diagonal_map():
    # W = diag(2, 0.5) is LU with P = L = I, U = 0: p(x) = N(x1/2) N(2 x2) / |2 · 0.5|.
    layer = InvertibleLinear(2).double()
    with torch.no_grad():
        layer.p.copy_(torch.eye(2))
        layer.sign.fill_(1.0)
        layer.lower.zero_()
        layer.upper.zero_()
        layer.log_s.copy_(torch.log(torch.tensor([2.0, 0.5])))
    flow = Flow(StandardNormal(2), [layer])
    x = torch.tensor([[1.0, -0.25], [0.0, 0.0], [-3.0, 1.0]], dtype=torch.float64)
    z1, z2 = x[:, 0] / 2, x[:, 1] * 2
    by_hand = -(z1**2 + z2**2) / 2 - math.log(2 * math.pi) - math.log(2 * 0.5)
    torch.testing.assert_close(flow.log_prob(x), by_hand)


def test_standard_normal_matches_torch_distributions():
    base = StandardNormal(3)
    z = torch.randn(10, 3)
    reference = torch.distributions.MultivariateNormal(torch.zeros(3), torch.eye(3))
    torch.testing.assert_close(base.log_prob(z), reference.log_prob(z))


def test_sample_shapes_and_generator():
    flow = perturb(realnvp(2, n_couplings=2, hidden=8))
    assert flow.sample(7).shape == (7, 2)
    assert flow.base.sample(5).shape == (5, 2)
    a = flow.sample(4, generator=torch.Generator().manual_seed(1))
    b = flow.sample(4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert not a.requires_grad
    assert flow.double().sample(3).dtype == torch.float64  # samples follow the flow's dtype


def test_realnvp_structure():
    flow = realnvp(2, n_couplings=3, mixing="permutation")
    names = [type(layer).__name__ for layer in flow.layers]
    assert names == [
        "AffineCoupling",
        "Permutation",
        "AffineCoupling",
        "Permutation",
        "AffineCoupling",
    ]
    masks = [layer.mask.tolist() for layer in flow.layers[::2]]
    assert masks == [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    assert [m.tolist() for m in alternating_masks(3, 2)] == [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.zeros(5), r"x must have shape \(batch, 2\), got \(5,\)"),
        (torch.zeros(5, 3), r"x must have shape \(batch, 2\), got \(5, 3\)"),
        (torch.zeros(2, 5, 2), r"got \(2, 5, 2\)"),
        ([[0.0, 1.0]], r"got list"),
        (torch.tensor([[0.0, float("nan")]]), "NaN or inf"),
        (torch.tensor([[float("inf"), 0.0]]), "NaN or inf"),
    ],
)
def test_flow_rejects_bad_input_with_a_clear_error(bad, match):
    flow = realnvp(2, n_couplings=2, hidden=8)
    with pytest.raises(ValueError, match=match):
        flow.log_prob(bad)


def test_forward_rejects_bad_latents():
    flow = realnvp(2, n_couplings=2, hidden=8)
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 2\)"):
        flow(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="z contains NaN"):
        flow(torch.full((4, 2), float("nan")))
    with pytest.raises(ValueError, match="positive"):
        flow.sample(0)


@pytest.mark.parametrize(
    "mask", [[1, 1], [0, 0], [1, 0.5], [[1, 0], [0, 1]], [], [float("nan"), 1]]
)
def test_coupling_rejects_bad_masks(mask):
    with pytest.raises(ValueError, match="mask"):
        AffineCoupling(mask)


def test_bad_builders_and_mismatched_layers():
    with pytest.raises(ValueError, match="mixing"):
        realnvp(mixing="shuffle")
    with pytest.raises(ValueError, match="n_couplings"):
        realnvp(n_couplings=0)
    with pytest.raises(ValueError, match="layer 1 .*dim 3.*dim 2"):
        Flow(StandardNormal(2), [Permutation(2), InvertibleLinear(3)])


def test_moons_recipe_optimizer_and_steps():
    recipe = MoonsRecipe(n_train=1000, batch_size=100, epochs=4)
    assert recipe.steps() == 40 and recipe.steps(epochs=1) == 10
    model = realnvp(2, n_couplings=2, hidden=8)
    opt, sched = recipe.optimizer(model, epochs=2)
    assert opt.param_groups[0]["lr"] == recipe.lr
    for _ in range(20):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # decayed to zero
    assert MoonsRecipe(cosine=False).optimizer(model)[1] is None
    assert MOONS_RECIPE.n_couplings >= 1


def test_short_training_lowers_held_out_nll(one_thread):
    flow = realnvp(2, n_couplings=4, hidden=32, mixing="linear")
    before, history = short_moons_training(flow, epochs=30)  # 240 steps
    after = history.eval[-1]
    assert history.steps == 240
    assert before > 2.0  # N(0, I) fits the moons badly
    assert after < 1.45 and after < before - 1.0
    assert after > 0.95  # below the data's entropy (about 1.00 nats) would mean a bug
