"""Tests of ``benchmarks/uva_multiscale.py``, the UvA tutorial 11 multi-scale flow."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "uva_multiscale.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("uva_multiscale", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


U = _load()


def _perturbed(model: torch.nn.Module, seed: int = 1, scale: float = 0.05) -> torch.nn.Module:
    """Add small noise to every parameter, so the zero-initialised couplings are not identities."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(42)
        return _perturbed(U.build_uva_multiscale())


def _images(n: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)


def test_parameter_count_is_the_tutorials() -> None:
    flow = U.build_uva_multiscale()
    counts = [sum(p.numel() for p in layer.parameters()) for layer in flow.flows]
    assert sum(counts) == U.TUTORIAL_NUM_PARAMS == 1_711_818
    # vardeq, 2 checkerboard (32), squeeze, 2 channel (48), split, squeeze, 4 channel (64)
    assert counts == [72_076] + [69_539] * 2 + [0] + [161_484] * 2 + [0, 0] + [294_424] * 4


def test_seeded_build_is_reproducible() -> None:
    torch.manual_seed(3)
    a = U.build_uva_multiscale().state_dict()
    torch.manual_seed(3)
    b = U.build_uva_multiscale().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_masks_and_squeeze_follow_the_tutorial() -> None:
    board = U.checkerboard_mask(3, 3)
    assert board.shape == (1, 1, 3, 3)
    assert board[0, 0].tolist() == [[0, 1, 0], [1, 0, 1], [0, 1, 0]]
    assert torch.equal(U.checkerboard_mask(3, 3, invert=True), 1 - board)
    assert U.channel_mask(4).flatten().tolist() == [1, 1, 0, 0]
    assert U.channel_mask(8, invert=True).flatten().tolist() == [0] * 4 + [1] * 4
    # The tutorial's printed example: a 4x4 image 1..16, pixel (0, 0) of the squeeze.
    img = torch.arange(1, 17).view(1, 1, 4, 4)
    squeezed, _ = U.SqueezeFlow()(img, None)
    assert squeezed.shape == (1, 4, 2, 2)
    assert squeezed[0, :, 0, 0].tolist() == [1, 2, 5, 6]
    assert squeezed[0, :, 1, 0].tolist() == [9, 10, 13, 14]
    assert torch.equal(U.SqueezeFlow()(squeezed, None, reverse=True)[0], img)


def test_bits_per_dim_finite_and_one_step_stays_finite() -> None:
    torch.manual_seed(0)
    flow = U.build_uva_multiscale()
    optimizer, scheduler = U.uva_optimizer(flow)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    images = _images()
    bpd = flow.bits_per_dim_each(images)
    assert bpd.shape == (4,)
    assert torch.isfinite(bpd).all()
    # At initialisation every coupling is the identity, so the bound is analytic
    # up to the uniform noise: about 8 bits for the 256 levels, plus the logit and prior.
    assert (bpd > 0).all()
    loss = bpd.mean()
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(flow.parameters(), U.TUTORIAL_GRAD_CLIP_NORM)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.99e-3)
    assert all(torch.isfinite(p).all() for p in flow.parameters())
    after = flow.bits_per_dim_each(images)
    assert torch.isfinite(after).all()


def test_bits_per_dim_is_the_negative_log_likelihood(model: torch.nn.Module) -> None:
    images = _images()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        bpd = model.bits_per_dim_each(images, generator=g)
        g.manual_seed(5)
        log_px = model.log_likelihood_each(images, generator=g)
        g.manual_seed(5)
        again = model.bits_per_dim_each(images, generator=g)
        imp = model.importance_bits_per_dim_each(images, import_samples=3, generator=g)
    assert torch.equal(bpd, again)  # the generator fixes the dequantization noise
    torch.testing.assert_close(bpd, -log_px / (784 * math.log(2)))
    assert torch.isfinite(imp).all() and imp.shape == (4,)


def test_flow_inverts(model: torch.nn.Module) -> None:
    images = _images()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        x, ldj = model.dequantize(images, generator=g)
        z, ldj, splits = model.transform(x, ldj)
        assert z.shape == (4, *U.LATENT_SHAPE)
        assert [s.shape for s in splits] == [(4, 2, 14, 14)]
        back = model.inverse(z, splits)
        torch.testing.assert_close(back, x, atol=1e-4, rtol=0)
        # Back to integers, only within one level: with these random weights the noise
        # flow saturates its sigmoid, whose alpha rescaling lets u reach 1 + 5e-6, the
        # next bin's edge (see test_dequantization_inverts_at_initialisation).
        pixels = model.flows[0].discretize(back)
        assert (pixels - images.long()).abs().max() <= 1


def test_dequantization_inverts_at_initialisation() -> None:
    # The tutorial's own check: at initialisation the noise couplings are identities,
    # u stays in [0, 1) and the integers come back exactly.
    torch.manual_seed(0)
    flow = U.build_uva_multiscale()
    images = _images(8)
    with torch.no_grad():
        x, _ = flow.dequantize(images, generator=torch.Generator().manual_seed(1))
    assert torch.equal(flow.flows[0].discretize(x), images.long())


def test_each_coupling_inverts(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(4)
    shapes = {1: (1, 28, 28), 4: (4, 14, 14), 8: (8, 7, 7)}
    couplings = [f for f in model.flows if isinstance(f, U.CouplingLayer)]
    couplings += list(model.flows[0].flows)
    assert len(couplings) == 12
    with torch.no_grad():
        for layer in couplings:
            channels = layer.scaling_factor.numel()
            z = torch.randn((2, *shapes[channels]), generator=g)
            cond = None
            if layer in model.flows[0].flows:
                cond = torch.rand((2, 1, 28, 28), generator=g) * 2 - 1
            ldj0 = torch.zeros(2)
            y, ldj = layer(z, ldj0, condition=cond)
            assert not torch.allclose(y, z)
            back, ldj_back = layer(y, ldj, reverse=True, condition=cond)
            torch.testing.assert_close(back, z, atol=1e-5, rtol=0)
            torch.testing.assert_close(ldj_back, ldj0, atol=1e-3, rtol=0)


def test_samples_shape_and_range(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    samples = model.sample(3, generator=g)
    assert samples.shape == (3, 1, 28, 28)
    assert samples.dtype == torch.float32
    assert samples.min() >= 0 and samples.max() <= 1
    levels = samples * 255
    torch.testing.assert_close(levels, levels.round())
    g.manual_seed(0)
    assert torch.equal(model.sample(3, generator=g), samples)
