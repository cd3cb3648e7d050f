"""Oracles shared by the flow tests: brute-force Jacobians and parameter perturbation."""

from __future__ import annotations

import torch
from torch import nn

from course_utils.core.data import moons
from course_utils.core.train import History, train


def perturb(module: nn.Module, scale: float = 0.3) -> nn.Module:
    """Move every parameter away from its initial value.

    Many layers start as the identity, and an identity layer hides sign and
    indexing bugs in its inverse and log-determinant.
    """
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


def jacobians(fn, z: torch.Tensor) -> torch.Tensor:
    """Per-row Jacobians ``(batch, out, in)`` of a row-wise map, from autograd.

    The rows of a batch do not interact, so the Jacobian of ``fn(z).sum(0)``
    with respect to ``z`` holds each row's ``out × in`` Jacobian.
    """
    jac = torch.autograd.functional.jacobian(lambda v: fn(v).sum(0), z)  # (out, batch, in)
    return jac.reshape(-1, *z.shape).permute(1, 0, 2)


def brute_force_log_det(fn, z: torch.Tensor) -> torch.Tensor:
    """``log|det ∂fn(z)/∂z|`` per row, from the full autograd Jacobian."""
    return torch.linalg.slogdet(jacobians(fn, z))[1]


def assert_round_trip(layer: nn.Module, z: torch.Tensor) -> None:
    """A layer ``(x, log_det) = layer(z)`` with ``layer.inverse``: both orders cancel.

    Also checks that the layer is not the identity (which would pass trivially)
    and that the two directions' log-determinants are opposite.
    """
    x, ld_forward = layer(z)
    z_back, ld_inverse = layer.inverse(x)
    assert not torch.allclose(x, z), "the layer should not be the identity after perturbing"
    torch.testing.assert_close(z_back, z)
    torch.testing.assert_close(layer(layer.inverse(z)[0])[0], z)
    torch.testing.assert_close(ld_inverse, -ld_forward)


def assert_log_dets_match_autograd(layer: nn.Module, z: torch.Tensor) -> None:
    """Both directions' log-determinants equal the brute-force Jacobian's."""
    x, ld_forward = layer(z)
    torch.testing.assert_close(ld_forward, brute_force_log_det(lambda v: layer(v)[0], z))
    _, ld_inverse = layer.inverse(x)
    torch.testing.assert_close(ld_inverse, brute_force_log_det(lambda v: layer.inverse(v)[0], x))


def short_moons_training(flow: nn.Module, epochs: int) -> tuple[float, History]:
    """Train ``flow`` briefly on 2,000 moons (8 batches of 256 per epoch).

    Returns the held-out NLL (1,000 points) before training and the history,
    whose ``eval`` holds the held-out NLL after each epoch.
    """
    train_x, test_x = moons(n_train=2000, n_test=1000)
    with torch.no_grad():
        before = float(flow.forward_kld(test_x))
    history = train(
        flow,
        lambda m, x: m.forward_kld(x),
        train_x,
        epochs=epochs,
        batch_size=256,
        lr=3e-3,
        device="cpu",
        progress=False,
        eval_fn=lambda m: float(m.forward_kld(test_x)),
    )
    return before, history
