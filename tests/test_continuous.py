"""Oracle tests of the continuous normalizing flow in ``course_utils.flows2d.continuous``.

Every check compares with something that does not share the code under test:
the solver with the closed-form solution of a linear ODE (``matrix_exp``), the
divergence with the trace of the full autograd Jacobian, Hutchinson's
estimator with the exact trace and the closed-form variance, and the flow's
log-density with the Gaussian that a linear field produces.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_utils.core.data import moons
from course_utils.core.train import train
from course_utils.flows2d.continuous import (
    CNF,
    TimeMLP,
    divergence_exact,
    divergence_hutchinson,
    gaussian_log_prob_after_linear_flow,
    hutchinson_variance,
    moons_cnf,
    odeint,
    probes,
)

# Every test here runs under the seeded, forked RNG of conftest.
pytestmark = pytest.mark.usefixtures("rng")


# A rotation with decay: a non-normal, non-diagonal matrix, so errors cannot cancel.
A = torch.tensor([[-0.3, 2.0], [-1.5, 0.2]], dtype=torch.float64)


class Linear(nn.Module):
    """The field ``f(z, t) = z Aᵀ`` (time-independent), with divergence ``tr(A)``."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.dim = len(a)
        self.a = nn.Parameter(a.clone())

    def forward(self, t: float, z: torch.Tensor) -> torch.Tensor:
        return z @ self.a.T


def random_field(dim: int = 2, hidden: int = 16) -> TimeMLP:
    """A float64 MLP field that actually moves points (no zero initialisation)."""
    return TimeMLP(dim, hidden, zero_init=False).double()


def autograd_jacobian(fn, z: torch.Tensor) -> torch.Tensor:
    """``(batch, D, D)`` Jacobians of a row-wise map, from the full autograd Jacobian."""
    jac = torch.autograd.functional.jacobian(lambda v: fn(v).sum(0), z)  # (D, batch, D)
    return jac.permute(1, 0, 2)


# ------------------------------------------------------------------ solvers


@pytest.mark.parametrize(("method", "order"), [("euler", 1), ("rk4", 4)])
def test_solver_order_on_a_linear_ode(method, order):
    z0 = torch.tensor([[1.0, -0.5], [0.3, 0.8]], dtype=torch.float64)
    exact = z0 @ torch.linalg.matrix_exp(1.0 * A).T
    steps = [8, 16, 32, 64]
    errors = [
        (odeint(lambda t, z: z @ A.T, z0, 0.0, 1.0, n, method) - exact).abs().max().item()
        for n in steps
    ]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]  # error ∝ h^order = n^-order
    assert slope == pytest.approx(order, abs=0.15)
    assert errors[-1] < (1e-6 if method == "rk4" else 0.1)


def test_solver_handles_time_dependent_fields_and_backward_time():
    # y' = cos(t) y  has  y(t) = y0 exp(sin t); backwards from t = 2 to 0 returns y0.
    f = lambda t, y: math.cos(t) * y  # noqa: E731
    y0 = torch.tensor([0.7], dtype=torch.float64)
    y2 = odeint(f, y0, 0.0, 2.0, 40)
    torch.testing.assert_close(y2, y0 * math.exp(math.sin(2.0)), rtol=1e-6, atol=0)
    torch.testing.assert_close(odeint(f, y2, 2.0, 0.0, 40), y0, rtol=1e-6, atol=0)


def test_return_path_has_every_step():
    y0 = torch.ones(3, 2, dtype=torch.float64)
    path = odeint(lambda t, y: -y, y0, 0.0, 1.0, 5, return_path=True)
    assert path.shape == (6, 3, 2)
    torch.testing.assert_close(path[0], y0)
    torch.testing.assert_close(path[-1], odeint(lambda t, y: -y, y0, 0.0, 1.0, 5))
    assert torch.all(path[1:].abs() < path[:-1].abs())  # decays at every step


def test_solver_rejects_bad_arguments():
    y0 = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="method must be one of"):
        odeint(lambda t, y: y, y0, 0.0, 1.0, 4, method="dopri5")
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        odeint(lambda t, y: y, y0, 0.0, 1.0, 0)
    with pytest.raises(ValueError, match=r"shape of y, \(2, 2\), got \(2, 3\)"):
        odeint(lambda t, y: torch.zeros(2, 3), y0, 0.0, 1.0, 4)


# ---------------------------------------------------------------- divergence


def test_exact_divergence_is_the_trace_of_the_autograd_jacobian():
    field = random_field(dim=5)
    z = torch.randn(16, 5, dtype=torch.float64, requires_grad=True)
    div = divergence_exact(field(0.3, z), z)
    jac = autograd_jacobian(lambda v: field(0.3, v), z.detach())
    assert jac.diagonal(dim1=1, dim2=2).sum(1).abs().min() > 1e-3  # not trivially zero
    torch.testing.assert_close(div, jac.diagonal(dim1=1, dim2=2).sum(1))


def test_exact_divergence_keeps_a_graph_for_training():
    field = random_field()
    z = torch.randn(8, 2, dtype=torch.float64, requires_grad=True)
    div = divergence_exact(field(0.0, z), z, create_graph=True)
    div.sum().backward()  # second derivatives reach the parameters
    assert all(p.grad is not None for p in field.parameters() if p.ndim == 2)
    assert field.net[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_with_the_closed_form_variance(kind):
    field = random_field(dim=4)
    z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    f_z = field(0.5, z)
    exact = divergence_exact(f_z, z)
    n = 4000
    eps = probes((n, 6, 4), kind, torch.Generator().manual_seed(1), dtype=torch.float64)
    est = divergence_hutchinson(f_z, z, eps, reduce=False)  # (n, batch)
    stderr = est.std(0) / math.sqrt(n)
    assert torch.all((est.mean(0) - exact).abs() < 4 * stderr)
    torch.testing.assert_close(est.mean(0), divergence_hutchinson(f_z, z, eps))
    theory = hutchinson_variance(autograd_jacobian(lambda v: field(0.5, v), z.detach()), kind)
    assert theory.min() > 1e-3
    torch.testing.assert_close(est.var(0), theory, rtol=0.15, atol=0)


def test_hutchinson_variance_formulas_by_hand():
    # J = [[1, 2], [0, 3]]: S = [[1, 1], [1, 3]], ‖S‖²_F = 12, off-diagonal part 2.
    jac = torch.tensor([[[1.0, 2.0], [0.0, 3.0]]])
    assert hutchinson_variance(jac, "gaussian").item() == 24.0
    assert hutchinson_variance(jac, "rademacher").item() == 4.0
    # An antisymmetric J has εᵀ J ε = 0 for every ε: no variance, and trace 0.
    anti = torch.tensor([[[0.0, 1.0], [-1.0, 0.0]]])
    assert hutchinson_variance(anti, "gaussian").item() == 0.0


def test_rademacher_probes_are_exact_for_a_diagonal_jacobian():
    w = torch.tensor([0.5, -2.0, 3.0], dtype=torch.float64)
    z = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    f_z = torch.sin(z) * w  # Jacobian diag(w cos z)
    eps = probes((1, 10, 3), "rademacher", dtype=torch.float64)
    torch.testing.assert_close(divergence_hutchinson(f_z, z, eps), (w * torch.cos(z)).sum(1))
    assert set(eps.unique().tolist()) == {-1.0, 1.0}


def test_divergence_rejects_bad_inputs():
    z = torch.randn(4, 2, requires_grad=True)
    f_z = z * 2
    with pytest.raises(ValueError, match=r"f_z must have the shape of z.*\(4, 2\), got \(4, 3\)"):
        divergence_exact(torch.zeros(4, 3), z)
    with pytest.raises(ValueError, match=r"z must have shape \(batch, D\), got \(4,\)"):
        divergence_exact(f_z[:, 0], z[:, 0])
    with pytest.raises(ValueError, match="requires_grad"):
        divergence_exact(torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"eps must have shape \(batch, D\) = \(4, 2\).*\(4, 3\)"):
        divergence_hutchinson(f_z, z, torch.ones(4, 3))
    with pytest.raises(ValueError, match="kind must be one of"):
        probes((4, 2), "uniform")
    with pytest.raises(ValueError, match=r"jacobian must have shape \(batch, D, D\)"):
        hutchinson_variance(torch.zeros(2, 3))


# ------------------------------------------------------------------ the CNF


def test_linear_field_log_det_is_t_times_trace():
    cnf = CNF(Linear(A), steps=7).double()
    z = torch.randn(20, 2, dtype=torch.float64)
    for t in (0.3, 1.0):
        _, log_det = cnf.forward(z, t)
        torch.testing.assert_close(log_det, torch.full_like(log_det, t * A.trace().item()))
        _, log_det_inv = cnf.inverse(z, t)
        torch.testing.assert_close(log_det_inv, -log_det)


def test_linear_field_density_is_the_closed_form_gaussian():
    cnf = CNF(Linear(A), steps=60).double()
    x = 2 * torch.randn(50, 2, dtype=torch.float64)
    expected = gaussian_log_prob_after_linear_flow(x, A)
    torch.testing.assert_close(cnf.log_prob(x), expected, rtol=0, atol=1e-7)
    z = torch.randn(5, 2, dtype=torch.float64)
    x_fwd, _ = cnf.forward(z)
    torch.testing.assert_close(x_fwd, z @ torch.linalg.matrix_exp(A).T, rtol=0, atol=1e-7)


@pytest.mark.parametrize("method", ["rk4", "euler"])
def test_forward_then_inverse_is_close_to_the_identity(method):
    z = torch.randn(32, 2, dtype=torch.float64)
    field = random_field()
    errors = []
    for steps in (5, 20):
        cnf = CNF(field, steps=steps, method=method).double()
        x, ld_fwd = cnf.forward(z)
        z_back, ld_inv = cnf.inverse(x)
        assert (x - z).abs().max() > 0.1  # the field really moves points
        errors.append((z_back - z).abs().max().item())
        if method == "rk4" and steps == 20:
            torch.testing.assert_close(z_back, z, rtol=0, atol=1e-6)
            torch.testing.assert_close(ld_inv, -ld_fwd, rtol=0, atol=1e-6)
    assert errors[1] < errors[0] / (100 if method == "rk4" else 2)


def test_log_prob_integrates_to_one_on_a_grid():
    cnf = CNF(random_field(), steps=10).double()
    xs = torch.linspace(-8, 8, 161, dtype=torch.float64)  # spacing 0.1
    grid = torch.cartesian_prod(xs, xs)
    with torch.no_grad():
        mass = cnf.log_prob(grid).exp().sum().item() * 0.1**2
    assert mass == pytest.approx(1.0, abs=0.01)


def test_no_grad_evaluation_equals_the_training_graph_value():
    cnf = CNF(random_field(), steps=6).double()
    x = torch.randn(10, 2, dtype=torch.float64)
    with_graph = cnf.log_prob(x)
    assert with_graph.requires_grad
    with torch.no_grad():
        without = cnf.log_prob(x)
    assert not without.requires_grad
    torch.testing.assert_close(without, with_graph.detach())


@pytest.mark.parametrize("trace", ["rademacher", "gaussian"])
def test_hutchinson_cnf_agrees_with_exact_on_average(trace):
    field = random_field()
    x = torch.randn(4, 2, dtype=torch.float64)
    exact = CNF(field, steps=4).double().log_prob(x).detach()
    hutch = CNF(field, steps=4, trace=trace).double()
    hutch.generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        runs = torch.stack([hutch.log_prob(x) for _ in range(150)])
    assert runs.std(0).min() > 0  # the estimate is random...
    stderr = runs.std(0) / math.sqrt(len(runs))
    assert torch.all((runs.mean(0) - exact).abs() < 4 * stderr)  # ...and unbiased


def test_trajectories_start_at_z_and_end_at_forward():
    cnf = CNF(random_field(), steps=6).double()
    z = torch.randn(7, 2, dtype=torch.float64)
    path = cnf.trajectories(z)
    assert path.shape == (7, 7, 2)
    torch.testing.assert_close(path[0], z)
    torch.testing.assert_close(path[-1], cnf.forward(z)[0])


def test_sample_is_reproducible_and_detached():
    cnf = CNF(TimeMLP(2, 16, zero_init=False), steps=4)
    a = cnf.sample(5, generator=torch.Generator().manual_seed(3))
    b = cnf.sample(5, generator=torch.Generator().manual_seed(3))
    assert a.shape == (5, 2) and not a.requires_grad
    torch.testing.assert_close(a, b)
    assert cnf.cost_per_pass() == 16
    cnf.evaluations = 0
    cnf.log_prob(torch.zeros(3, 2))
    assert cnf.evaluations == cnf.cost_per_pass()  # 4 RK4 steps, 4 evaluations each


def test_cnf_rejects_bad_input_with_a_clear_error():
    cnf = moons_cnf(hidden=8, steps=2)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\), got \(5,\)"):
        cnf.log_prob(torch.zeros(5))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 2\), got \(5, 3\)"):
        cnf.log_prob(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 2\), got \(4, 1\)"):
        cnf.forward(torch.zeros(4, 1))
    with pytest.raises(ValueError, match="NaN or inf"):
        cnf.log_prob(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"t must be in \(0, t1\]"):
        cnf.log_prob(torch.zeros(3, 2), t=1.5)
    with pytest.raises(ValueError, match="positive"):
        cnf.sample(0)
    with pytest.raises(ValueError, match="trace must be one of"):
        CNF(TimeMLP(2), trace="hutch")
    with pytest.raises(ValueError, match="method must be one of"):
        CNF(TimeMLP(2), method="midpoint")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        CNF(TimeMLP(2), steps=0)
    with pytest.raises(ValueError, match=r"z must have shape \(batch, 3\)"):
        TimeMLP(3)(0.0, torch.zeros(2, 2))


def test_short_training_lowers_the_held_out_nll():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_x, test_x = moons(n_train=2000, n_test=500)
        cnf = moons_cnf(hidden=32, steps=4)
        with torch.no_grad():
            before = cnf.forward_kld(test_x).item()
        history = train(
            cnf,
            lambda m, x: m.forward_kld(x),
            train_x,
            epochs=4,
            batch_size=256,
            lr=1e-2,
            device="cpu",
            progress=False,
            eval_fn=lambda m: m.forward_kld(test_x).item(),
        )
    finally:
        torch.set_num_threads(threads)
    # A zero-initialised field is the identity flow: the NLL of N(0, I) on the data.
    identity_nll = ((test_x**2).sum(1) / 2 + math.log(2 * math.pi)).mean().item()
    assert before == pytest.approx(identity_nll, abs=1e-5)
    assert history.eval[-1] < before - 0.4
    assert not history.stopped


def test_loss_curves_spaces_values_by_x_every():
    # Lesson 06 evaluates every 50 steps and draws its NLL curve against the step number.
    import matplotlib.pyplot as plt

    from course_utils.core.plots import loss_curves

    fig = loss_curves({"held-out": [3.0, 2.0, 1.5]}, x_every=50)
    xs, ys = fig.axes[0].lines[0].get_data()
    assert list(xs) == [50, 100, 150] and list(ys) == [3.0, 2.0, 1.5]
    default = loss_curves({"a": [1.0, 2.0]})
    assert list(default.axes[0].lines[0].get_xdata()) == [1, 2]
    plt.close("all")
