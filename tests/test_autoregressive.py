"""Oracle tests of MADE, MAF and IAF in ``course_utils.flows2d.autoregressive``.

The autoregressive property is checked on the autograd Jacobian (not on the
masks that are meant to produce it); the density against ``torch.distributions``
where it is known in closed form and against the layer's own samples; the
number of MADE passes in each direction with a hook, and normflows'
autoregressive layer for the same property. Each layer's inverse and
log-determinant are checked in ``test_invertible_layers.py``.
Layers start as the identity, so every test first perturbs the parameters.
"""

from __future__ import annotations

import normflows as nf
import pytest
import torch
from oracles import jacobians, perturb, short_moons_training

from course_utils.core.plots import grid_2d
from course_utils.flows2d.autoregressive import (
    MADE,
    AffineAutoregressive,
    IAFLayer,
    MAFLayer,
    MaskedLinear,
    autoregressive_flow,
    count_made_passes,
    hidden_degrees,
    input_degrees,
    made_masks,
    time_directions,
)

# Every test here runs under the seeded, forked RNG of conftest.
pytestmark = pytest.mark.usefixtures("rng")


# ------------------------------------------------------------ degrees, masks


def test_input_degrees_follow_the_order():
    assert input_degrees(4).tolist() == [1, 2, 3, 4]
    # order [2, 0, 3, 1]: x2 first, then x0, x3, x1
    assert input_degrees(4, order=[2, 0, 3, 1]).tolist() == [2, 4, 1, 3]
    assert input_degrees(1).tolist() == [1]


def test_hidden_degrees_cover_every_useful_degree_evenly():
    deg = hidden_degrees(5, 12)
    assert sorted(set(deg.tolist())) == [1, 2, 3, 4]  # never 5: it could feed no output
    assert torch.bincount(deg)[1:].tolist() == [3, 3, 3, 3]
    assert hidden_degrees(1, 3).tolist() == [1, 1, 1]


@pytest.mark.parametrize(
    ("dim", "hidden", "order"),
    [(2, [4], None), (5, [8, 8], None), (5, [4, 6, 9], [3, 0, 4, 1, 2]), (4, [], [1, 3, 0, 2])],
)
def test_mask_paths_connect_exactly_the_earlier_coordinates(dim, hidden, order):
    degrees = input_degrees(dim, order)
    masks = made_masks(degrees, hidden)
    paths = masks[0]
    for mask in masks[1:]:
        paths = mask @ paths  # paths[i, j] = number of paths from input j to output i
    allowed = degrees[:, None] > degrees[None, :]  # the definition of autoregressive
    assert torch.equal(paths > 0, allowed)


def test_made_jacobian_is_strictly_triangular_in_its_order():
    order = [3, 0, 4, 1, 2]
    made = perturb(MADE(5, hidden=[16, 16], n_params=2, order=order)).double()
    x = torch.randn(8, 5, dtype=torch.float64)
    jac = jacobians(lambda v: made(v).reshape(len(v), -1), x).reshape(8, 2, 5, 5)
    # Rows and columns in generation order: a strictly lower-triangular matrix.
    in_order = jac[:, :, order][:, :, :, order]
    upper = torch.triu(torch.ones(5, 5, dtype=torch.bool))
    assert torch.all(in_order[..., upper] == 0)  # exactly zero, not just small
    assert torch.all(in_order[..., ~upper].abs() > 1e-8)  # every allowed dependence is used
    assert made.order.tolist() == order


def test_masked_linear_ignores_masked_weights():
    layer = MaskedLinear(3, 2, torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    x = torch.randn(4, 3)
    expected = x @ (layer.weight * layer.mask).T + layer.bias
    torch.testing.assert_close(layer(x), expected)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\), got \(3, 2\)"):
        MaskedLinear(3, 2, torch.ones(3, 2))


# ------------------------------------------------------------ MAF and IAF


@pytest.mark.parametrize("layer_cls", [MAFLayer, IAFLayer])
def test_layer_jacobian_is_triangular_with_exp_s_on_the_diagonal(layer_cls):
    order = [2, 0, 1]
    layer = perturb(layer_cls(3, hidden=[8, 8], order=order)).double()
    z = torch.randn(4, 3, dtype=torch.float64)
    x, _ = layer(z)
    jac = jacobians(lambda v: layer(v)[0], z)[:, order][:, :, order]
    assert torch.all(torch.triu(jac, 1) == 0)
    s, _ = layer.scale_shift(x if layer_cls is MAFLayer else z)
    torch.testing.assert_close(torch.diagonal(jac, dim1=1, dim2=2), torch.exp(s[:, order]))


@pytest.mark.parametrize(("layer_cls", "density", "sampling"), [(MAFLayer, 1, 6), (IAFLayer, 6, 1)])
def test_made_passes_per_direction(layer_cls, density, sampling):
    layer = layer_cls(6, hidden=[8])
    u = torch.randn(3, 6)
    assert count_made_passes(layer, "density", u) == density
    assert count_made_passes(layer, "sampling", u) == sampling
    assert layer.passes() == {"density": density, "sampling": sampling}


def test_normflows_autoregressive_layer_is_one_pass_for_sampling():
    # normflows' MaskedAffineAutoregressive computes its parameters from the
    # input of `forward`, and normflows' forward is latent -> data: like our IAF
    # it samples in one pass and needs `features` passes for the density.
    # nf.flows.Reverse swaps the directions, which gives MAF's costs.
    dim = 5
    layer = nf.flows.MaskedAffineAutoregressive(dim, 8, num_blocks=1, use_residual_blocks=False)
    calls = []
    layer.autoregressive_net.register_forward_hook(lambda *_: calls.append(1))
    u = torch.randn(4, dim)
    with torch.no_grad():
        x, _ = layer(u)  # normflows: forward = latent -> data (sampling)
        sampling, calls[:] = len(calls), []
        layer.inverse(x)  # data -> latent (density)
        density, calls[:] = len(calls), []
        nf.flows.Reverse(layer).inverse(u)
        reversed_density = len(calls)
    ours = IAFLayer(dim, hidden=[8]).passes()
    assert (sampling, density) == (ours["sampling"], ours["density"]) == (1, dim)
    assert reversed_density == MAFLayer(dim, hidden=[8]).passes()["density"] == 1


@pytest.mark.parametrize("kind", ["maf", "iaf"])
def test_closed_form_with_unconditional_outputs(kind):
    # With every weight zero, x = z exp(s) + t coordinate-wise with constant
    # s and t: the flow is N(t, diag(exp(2 s))), known to torch.distributions.
    flow = autoregressive_flow(3, n_layers=1, hidden=[8], kind=kind).double()
    layer = flow.layers[0]
    s_raw = torch.tensor([0.3, -0.7, 1.1], dtype=torch.float64)
    t = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    with torch.no_grad():
        layer.made.net[-1].bias.copy_(torch.cat([s_raw, t]))
        layer.s_scale.fill_(0.8)
    s = 0.8 * torch.tanh(s_raw)
    normal = torch.distributions.Normal(t, torch.exp(s))
    x = torch.randn(20, 3, dtype=torch.float64)
    torch.testing.assert_close(flow.log_prob(x), normal.log_prob(x).sum(1))


@pytest.mark.parametrize("kind", ["maf", "iaf"])
def test_density_and_samples_agree(kind):
    # The density (inverse direction) integrated over a window must match the
    # fraction of samples (forward direction) landing in it: two code paths,
    # one number. The window [-2, 2]² cuts off part of the mass, so a density
    # that integrates to 1 for the wrong reason would not pass.
    flow = perturb(autoregressive_flow(2, n_layers=3, hidden=[16], kind=kind), 0.2).double()
    h = 0.02
    _, _, grid = grid_2d((-2 + h / 2, 2 - h / 2), (-2 + h / 2, 2 - h / 2), 200)  # cell midpoints
    with torch.no_grad():
        integral = flow.log_prob(grid.double()).exp().sum().item() * h**2
        x = flow.sample(40_000, generator=torch.Generator().manual_seed(0))
    fraction = (x.abs() <= 2).all(1).double().mean().item()
    assert 0.3 < fraction < 0.98, "the test needs a window that cuts off some mass"
    assert abs(integral - fraction) < 0.01  # about 4 standard errors of the fraction


def test_flow_builder_alternates_orders_and_uses_the_right_layers():
    maf = autoregressive_flow(4, n_layers=3, hidden=[8], kind="maf")
    iaf = autoregressive_flow(4, n_layers=2, hidden=[8], kind="iaf")
    assert [type(layer).__name__ for layer in maf.layers] == ["MAFLayer"] * 3
    assert [type(layer).__name__ for layer in iaf.layers] == ["IAFLayer"] * 2
    orders = [layer.made.order.tolist() for layer in maf.layers]
    assert orders == [[0, 1, 2, 3], [3, 2, 1, 0], [0, 1, 2, 3]]
    x = torch.randn(5, 4)
    torch.testing.assert_close(maf.log_prob(x), maf.base.log_prob(x))  # starts as identity


# -------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: MADE(5, hidden=[3]), r"at least dim - 1 = 4 units.*\[3\]"),
        (lambda: MADE(3, order=[0, 1, 1]), r"permutation of 0..2"),
        (lambda: MADE(3, order=[0, 1]), r"shape \(3,\), got \[0, 1\] of shape \(2,\)"),
        (lambda: MADE(0), "dim must be positive"),
        (lambda: MADE(3, n_params=0), "n_params"),
        (lambda: AffineAutoregressive(2, reads="both"), "reads"),
        (lambda: autoregressive_flow(2, kind="nice"), "kind"),
        (lambda: autoregressive_flow(2, n_layers=0), "n_layers"),
        (lambda: made_masks(torch.ones(2, 2), [4]), r"degrees must have shape \(dim,\)"),
    ],
)
def test_bad_settings_give_clear_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize("layer_cls", [MAFLayer, IAFLayer])
def test_bad_shapes_give_clear_errors(layer_cls):
    layer = layer_cls(2, hidden=[4])
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\), got \(5, 3\)"):
        layer.inverse(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 2\), got \(2,\)"):
        layer(torch.zeros(2))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\), got \(4, 2, 1\)"):
        layer.made(torch.zeros(4, 2, 1))
    with pytest.raises(ValueError, match="direction"):
        count_made_passes(layer, "backwards", torch.zeros(1, 2))


# ------------------------------------------------------ timing and training


def test_time_directions_reports_every_row():
    threads = torch.get_num_threads()
    rows = time_directions([2, 4], hidden=8, batch=16, repeats=1, threads=1)
    assert torch.get_num_threads() == threads  # restored
    expected = [(2, "MAF"), (2, "IAF"), (4, "MAF"), (4, "IAF")]
    assert [(r["dim"], r["model"]) for r in rows] == expected
    assert all(r["density_s"] > 0 and r["sampling_s"] > 0 for r in rows)
    assert [(r["density_passes"], r["sampling_passes"]) for r in rows] == [
        (1, 2),
        (2, 1),
        (1, 4),
        (4, 1),
    ]
    with pytest.raises(ValueError, match="repeats"):
        time_directions([2], repeats=0)


def test_short_maf_training_lowers_held_out_nll(one_thread):
    flow = autoregressive_flow(2, n_layers=4, hidden=[32, 32], kind="maf")
    before, history = short_moons_training(flow, epochs=25)  # 200 steps
    after = history.eval[-1]
    assert before > 2.0  # N(0, I) fits the moons badly
    assert after < 1.5 and after < before - 1.0
    assert after > 0.95  # below the data's entropy (about 1.00 nats) would mean a bug
