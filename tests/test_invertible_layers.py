"""One conformance test for every invertible layer the course defines.

For each layer, on a small batch in float64 and after moving its parameters
away from their (often identity) start:

* inverse after forward is the identity, and forward after inverse too;
* the two directions' log-determinants are opposite;
* each direction's log-determinant equals ``log|det J|`` of the autograd
  Jacobian of that direction, and the rows of a batch do not interact.

Every layer is seen through one small interface, :class:`Bijection`: maps of
``(batch, D)`` rows, each returning ``(values, log_det)``. Layers that work on
images, on lists of latents or with another signature get a thin adapter here.
Layer-specific oracles (closed-form densities, triangular Jacobians, reference
implementations) stay in each module's own test file.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from unittest import mock

import normflows as nf
import pytest
import torch
from oracles import perturb
from torch import nn

from course_utils.flows2d import (
    autoregressive,
    bijections,
    conditional,
    continuous,
    flows,
    inference,
    models2d,
)
from course_utils.glow import layers as glow_layers
from course_utils.glow.model import Glow
from course_utils.inpaint.flow import coordinates

Tensor = torch.Tensor
DTYPE = torch.float64

# Every test here runs under the seeded, forked RNG of conftest.
pytestmark = pytest.mark.usefixtures("rng")


class Bijection(Protocol):
    """The interface the checks use: ``(values, log_det)`` both ways on ``(batch, D)`` rows.

    The course's 2-D layers have it already; the others get an adapter below.
    """

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]: ...

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]: ...


@dataclass
class Case:
    """One layer under test.

    Attributes:
        covers: the course class (or builder) the case tests.
        make: builds the layer, initialised and perturbed, as a :class:`Bijection`.
        dim: ``D``, the length of a row.
        domain: draws ``n`` rows where ``forward`` is defined (default ``N(0, I)``).
        codomain: draws ``n`` rows where ``inverse`` is defined (default: as ``domain``).
        invertible: False for a map the course only runs one way (then only its
            log-determinant is checked).
        differentiable_inverse: False when the inverse is found by a search that
            autograd cannot see through; its log-determinant is then checked as
            minus the forward Jacobian's at the point it returns.
        volume_preserving: the map keeps volumes (log-det 0); any other case must
            report a log-det away from 0, or an identity layer would pass trivially.
        batch: rows per check.
        tol: ``atol`` and ``rtol`` of every comparison.
    """

    covers: object
    make: Callable[[], Bijection]
    dim: int
    domain: Callable[[int], Tensor] | None = None
    codomain: Callable[[int], Tensor] | None = None
    invertible: bool = True
    differentiable_inverse: bool = True
    volume_preserving: bool = False
    batch: int = 4
    tol: float = 1e-7

    def draw(self, n: int, inverse_side: bool = False) -> Tensor:
        sampler = (self.codomain or self.domain) if inverse_side else self.domain
        return sampler(n) if sampler else 1.5 * torch.randn(n, self.dim, dtype=DTYPE)


# --------------------------------------------------------------------- adapters


class Rows:
    """A layer with ``(values, log_det)`` both ways on tensors of ``shape``, maybe with a context.

    ``context`` ``(1, ...)`` is the same for every row.
    """

    def __init__(self, layer: nn.Module, shape: Sequence[int], context: Tensor | None = None):
        self.layer, self.shape, self.context = layer, tuple(shape), context

    def _run(self, fn: Callable, v: Tensor) -> tuple[Tensor, Tensor]:
        args = () if self.context is None else (self.context.expand(len(v), -1, -1, -1),)
        out, log_det = fn(v.reshape(len(v), *self.shape), *args)
        return out.reshape(len(v), -1), log_det

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self._run(self.layer.forward, z)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._run(self.layer.inverse, x)


class GivenContext:
    """A conditional 2-D layer or flow (``forward(z, c)``, ``inverse(x, c)``) at one context."""

    def __init__(self, layer: nn.Module, context: Sequence[float]) -> None:
        self.layer, self.context = layer, torch.tensor(context, dtype=DTYPE)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.layer.forward(z, self.context)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.layer.inverse(x, self.context)


class Chain:
    """Layers listed latent → data (normflows' order), run one after the other."""

    def __init__(self, layers: Sequence[nn.Module], shape: Sequence[int]) -> None:
        self.layers, self.shape = list(layers), tuple(shape)

    def _run(self, v: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        out = v.reshape(len(v), *self.shape)
        log_det = torch.zeros(len(v), dtype=v.dtype)
        for layer in reversed(self.layers) if inverse else self.layers:
            out, ld = layer.inverse(out) if inverse else layer(out)
            log_det = log_det + ld
        return out.reshape(len(v), -1), log_det

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self._run(z, inverse=False)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._run(x, inverse=True)


class Elementwise:
    """Lesson 01's maps: ``forward``, ``inverse`` and ``log_abs_det`` (of the forward map).

    1-D maps act on ``(batch, 1)`` rows; 2-D maps on ``(batch, 2)``.
    """

    def __init__(self, f: object, one_d: bool) -> None:
        self.f, self.one_d = f, one_d

    def _ld(self, z: Tensor) -> Tensor:
        return self.f.log_abs_det(z[:, 0] if self.one_d else z)

    def _apply(self, fn: Callable, v: Tensor) -> Tensor:
        return fn(v[:, 0])[:, None] if self.one_d else fn(v)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self._apply(self.f.forward, z), self._ld(z)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self._apply(self.f.inverse, x)
        return z, -self._ld(z)


class GlowFlow:
    """A Glow's whole flow: latents (coarsest level first, flattened, joined) ↔ images."""

    def __init__(self, model: Glow) -> None:
        self.model = model
        self.shapes = model.latent_shapes()
        self.sizes = [math.prod(s) for s in self.shapes]

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        parts = [
            p.reshape(len(z), *s) for p, s in zip(z.split(self.sizes, 1), self.shapes, strict=True)
        ]
        x, log_det = self.model.flow.forward_and_log_det(parts)
        return x.flatten(1), log_det

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z, log_det = self.model.flow.inverse_and_log_det(
            x.reshape(len(x), *self.model.config.shape)
        )
        return torch.cat([p.flatten(1) for p in z], 1), log_det


class Pixels:
    """Inpainting's coordinates: pixels ``u`` → the model's ``y`` (its logit) and back."""

    def __init__(self, alpha: float) -> None:
        self.c = coordinates(Glow(levels=1, blocks=1, hidden=2, logit_alpha=alpha))

    def forward(self, u: Tensor) -> tuple[Tensor, Tensor]:
        y = self.c.to_model(u)
        return y, self.c.log_det(y)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.c.to_pixels(y), -self.c.log_det(y)


class NoiseToPixels:
    """The variational dequantizer for fixed 8-bit images: its uniform noise ``w`` → ``u``.

    ``u = (k + v(w)) / 256``, so ``log|det ∂u/∂w| = −log q(v|k) − D log 256``.
    The course only runs it forwards (it draws ``w`` itself; the noise is fed in here).
    """

    def __init__(self, dequantizer: glow_layers.VariationalDequantizer, images: Tensor) -> None:
        self.dequantizer, self.images = dequantizer, images

    def forward(self, w: Tensor) -> tuple[Tensor, Tensor]:
        images = self.images[: len(w)]
        noise = w.reshape(images.shape)
        with mock.patch.object(torch, "rand", lambda *args, **kwargs: noise):
            u, log_q = self.dequantizer(images)
        return u.flatten(1), -log_q - w.shape[1] * math.log(256)


class SpectralNoise:
    """The spectral base's draw: standard normal noise ``ε`` → latent ``z = from_noise(ε)``.

    The base states no log-determinant; its density implies one,
    ``log|det ∂z/∂ε| = log N(ε; 0, I) − log p(z)``, which is what is checked.
    """

    def __init__(self, base: glow_layers.SpectralGlowBase) -> None:
        self.base = base

    def forward(self, eps: Tensor) -> tuple[Tensor, Tensor]:
        z = self.base.from_noise(eps.reshape(len(eps), *self.base.shape))
        normal = -0.5 * (eps**2).sum(1) - 0.5 * eps.shape[1] * math.log(2 * math.pi)
        return z.flatten(1), normal - self.base.log_prob(z)


# ---------------------------------------------------------------- the layers


def _moved(module: nn.Module, scale: float = 0.3) -> nn.Module:
    """``module`` in float64, every parameter moved away from its (often identity) start."""
    return perturb(module, scale).to(DTYPE)


def _unit(n: int, dim: int, low: float = 0.02, high: float = 0.98) -> Tensor:
    return low + (high - low) * torch.rand(n, dim, dtype=DTYPE)


def _line(n: int) -> Tensor:
    """``n`` points spread evenly over ``[−4, 4]``, centre and tails included: ``(n, 1)``."""
    return (torch.linspace(-4, 4, n, dtype=DTYPE) + 0.1 * torch.rand(n, dtype=DTYPE))[:, None]


def _linear_2d(matrix: list[list[float]]) -> bijections.Linear2D:
    f = bijections.Linear2D(matrix)
    f.matrix = f.matrix.to(DTYPE)  # it stores float32
    return f


def _planar_near_the_constraint() -> inference.Planar:
    layer = inference.Planar(2).to(DTYPE)
    with torch.no_grad():  # wᵀu far below −1: û is projected back onto the constraint
        layer.w.copy_(torch.tensor([1.5, -0.5]))
        layer.u.copy_(torch.tensor([-6.0, 2.0]))
        layer.b.fill_(0.3)
    return layer


def _radial(dim: int, beta: float) -> inference.Radial:
    """A radial layer with a random centre and width, and ``β = beta · α`` (β > −α)."""
    layer = _moved(inference.Radial(dim), 0.5)
    with torch.no_grad():  # softplus(β_raw) = α + β
        layer.beta_raw.copy_(torch.expm1(layer.alpha() * (1 + beta)).log())
    return layer


def _masked_coupling(mask: Tensor, channels: int, context: int = 0) -> Rows:
    """A coupling on ``(channels, 4, 4)`` images, maybe seeing a fixed ``context`` image."""
    layer = _moved(glow_layers.MaskedAffineCoupling(mask, channels, 8, 1, context))
    seen = torch.rand(1, context, 4, 4, dtype=DTYPE) if context else None
    return Rows(layer, (channels, 4, 4), seen)


def _glow_block(coupling: str) -> Chain:
    shape = (4, 3, 3)
    block = [f.to(DTYPE) for f in glow_layers.glow_block(4, 8, 1, coupling=coupling)]
    chain = Chain(block, shape)
    with torch.no_grad():  # ActNorm's data-dependent start, on data off centre and spread
        chain.inverse(0.5 + 2 * torch.randn(16, math.prod(shape), dtype=DTYPE))
    for f in block:
        perturb(f, 0.05)
    return chain


def _glow(shape: tuple[int, int, int], **config: object) -> GlowFlow:
    model = Glow(shape=shape, **config).to(DTYPE)
    model.initialize(_unit(16, math.prod(shape)).reshape(16, *shape))
    perturb(model, 0.05)
    return GlowFlow(model.eval())


def _image_domain(shape: Sequence[int]) -> Callable[[int], Tensor]:
    return lambda n: _unit(n, math.prod(shape))


def _dequantizer() -> NoiseToPixels:
    shape = (1, 4, 4)
    layer = _moved(glow_layers.VariationalDequantizer(shape, couplings=2, hidden=4, layers=1))
    images = torch.randint(0, 256, (4, *shape), dtype=torch.uint8)
    return NoiseToPixels(layer, images)


def _spectral_base() -> SpectralNoise:
    base = glow_layers.SpectralGlowBase((2, 3, 4)).to(DTYPE)
    with torch.no_grad():
        base.loc.normal_()
        base.log_scale.normal_(0, 0.5)
    return SpectralNoise(base)


def _normflows_model(model: nf.NormalizingFlow, dim: int) -> Chain:
    return Chain(perturb(model).to(DTYPE).flows, (dim,))


CASES = {
    # lesson 01: hand-made bijections
    "sinh-arcsinh, fat tails": Case(
        bijections.SinhArcsinh,
        lambda: Elementwise(bijections.SinhArcsinh(skew=0.7, tail=0.6, loc=0.5, scale=1.5), True),
        dim=1,
        domain=_line,
    ),
    "sinh-arcsinh, thin tails": Case(
        bijections.SinhArcsinh,
        lambda: Elementwise(bijections.SinhArcsinh(skew=-0.7, tail=1.9, loc=1.0, scale=2.0), True),
        dim=1,
        domain=_line,
    ),
    "tanh bump": Case(
        bijections.TanhBump,
        lambda: Elementwise(bijections.TanhBump(a=2.0, b=2.0), True),
        dim=1,
        domain=_line,
        differentiable_inverse=False,
    ),
    "tanh bump, a < 0": Case(
        bijections.TanhBump,
        lambda: Elementwise(bijections.TanhBump(a=-0.4, b=2.0), True),
        dim=1,
        domain=_line,
        differentiable_inverse=False,
    ),
    "linear 2d": Case(
        bijections.Linear2D,
        lambda: Elementwise(_linear_2d([[0.8, 0.6], [0.3, 0.85]]), False),
        dim=2,
    ),
    "banana": Case(
        bijections.Banana,
        lambda: Elementwise(bijections.Banana(0.9), False),
        dim=2,
        volume_preserving=True,
    ),
    # lesson 02: coupling flows from scratch
    "coupling keeps x1": Case(
        flows.AffineCoupling, lambda: _moved(flows.AffineCoupling([1, 0], 16)), 2
    ),
    "coupling keeps x2": Case(
        flows.AffineCoupling, lambda: _moved(flows.AffineCoupling([0, 1], 16)), 2
    ),
    "coupling 5d": Case(
        flows.AffineCoupling, lambda: _moved(flows.AffineCoupling([1, 0, 1, 0, 0], 16)), 5
    ),
    # lesson 11: couplings whose networks also see a context
    "conditional coupling keeps x1": Case(
        conditional.ConditionalAffineCoupling,
        lambda: GivenContext(
            _moved(conditional.ConditionalAffineCoupling([1, 0], 1, 16), 0.5), [0.7]
        ),
        2,
    ),
    "conditional coupling 5d, 3 context numbers": Case(
        conditional.ConditionalAffineCoupling,
        lambda: GivenContext(
            _moved(conditional.ConditionalAffineCoupling([0, 1, 1, 0, 0], 3, 16), 0.5),
            [0.3, -1.0, 2.0],
        ),
        5,
    ),
    "conditional realnvp": Case(
        conditional.ConditionalFlow,
        lambda: GivenContext(_moved(conditional.conditional_realnvp(2, 2, 3, 16)), [1.0, -0.5]),
        2,
    ),
    "invertible linear 5d": Case(
        flows.InvertibleLinear, lambda: _moved(flows.InvertibleLinear(5, seed=1)), 5
    ),
    "permutation 5d": Case(
        flows.Permutation,
        lambda: _moved(flows.Permutation(5, seed=2)),
        5,
        volume_preserving=True,
    ),
    "realnvp, linear mixing": Case(
        flows.Flow, lambda: _moved(flows.realnvp(2, n_couplings=4, hidden=16, mixing="linear")), 2
    ),
    "realnvp, permutations": Case(
        flows.realnvp,
        lambda: _moved(flows.realnvp(3, n_couplings=3, hidden=16, mixing="permutation")),
        3,
    ),
    # lesson 03: the same in normflows, and splines
    "normflows realnvp": Case(
        models2d.realnvp_nf,
        lambda: _normflows_model(models2d.realnvp_nf(3, n_couplings=3, hidden=16), 3),
        3,
    ),
    "normflows realnvp, permutations": Case(
        models2d.realnvp_nf,
        lambda: _normflows_model(
            models2d.realnvp_nf(2, n_couplings=3, hidden=16, mixing="permutation"), 2
        ),
        2,
    ),
    "normflows spline flow": Case(
        models2d.spline_flow,
        lambda: _normflows_model(models2d.spline_flow(2, n_layers=2, hidden=16, n_blocks=1), 2),
        2,
    ),
    # lesson 04: autoregressive layers
    "MAF 1d": Case(
        autoregressive.MAFLayer, lambda: _moved(autoregressive.MAFLayer(1, hidden=[4])), 1
    ),
    "MAF 5d shuffled": Case(
        autoregressive.MAFLayer,
        lambda: _moved(autoregressive.MAFLayer(5, hidden=[16, 16], order=[3, 0, 4, 1, 2])),
        5,
    ),
    "IAF 2d": Case(
        autoregressive.IAFLayer, lambda: _moved(autoregressive.IAFLayer(2, hidden=[8, 8])), 2
    ),
    "IAF 5d shuffled": Case(
        autoregressive.IAFLayer,
        lambda: _moved(autoregressive.IAFLayer(5, hidden=[16, 16], order=[3, 0, 4, 1, 2])),
        5,
    ),
    # lesson 05: layers for variational inference
    "planar 2d": Case(inference.Planar, lambda: _moved(inference.Planar(2), 0.5), 2),
    "planar 5d": Case(inference.Planar, lambda: _moved(inference.Planar(5), 0.5), 5),
    "planar near the constraint": Case(inference.Planar, _planar_near_the_constraint, 2),
    "radial 2d, contracting": Case(inference.Radial, lambda: _radial(2, beta=-0.6), 2),
    "radial 3d, expanding": Case(inference.Radial, lambda: _radial(3, beta=1.5), 3),
    "loc-scale 3d": Case(inference.LocScale, lambda: _moved(inference.LocScale(3), 0.5), 3),
    # lesson 06: a continuous flow (exact trace); the solver's error sets the tolerance
    "CNF, RK4": Case(
        continuous.CNF,
        lambda: continuous.CNF(continuous.TimeMLP(2, 16, zero_init=False), steps=40).to(DTYPE),
        2,
        tol=1e-6,
    ),
    # lesson 07: the Glow's layers and whole flows
    "masked coupling, checkerboard": Case(
        glow_layers.MaskedAffineCoupling,
        lambda: _masked_coupling(glow_layers.checkerboard(4, 4), 1),
        16,
    ),
    "masked coupling, 2 channels, other squares": Case(
        glow_layers.MaskedAffineCoupling,
        lambda: _masked_coupling(glow_layers.checkerboard(4, 4, invert=True), 2),
        32,
    ),
    "masked coupling, channels": Case(
        glow_layers.MaskedAffineCoupling,
        lambda: _masked_coupling(glow_layers.channel_mask(4), 4),
        64,
    ),
    "masked coupling seeing a context": Case(
        glow_layers.MaskedAffineCoupling,
        lambda: _masked_coupling(glow_layers.checkerboard(4, 4), 1, context=1),
        16,
    ),
    "glow block, masked coupling": Case(glow_layers.glow_block, lambda: _glow_block("masked"), 36),
    "glow block, normflows coupling": Case(
        glow_layers.glow_block, lambda: _glow_block("normflows"), 36
    ),
    "glow, normflows blocks, logit": Case(
        Glow,
        lambda: _glow((1, 8, 8), levels=2, blocks=2, hidden=4, net="conv", logit_alpha=0.05),
        64,
        codomain=_image_domain((1, 8, 8)),
        batch=2,
    ),
    "glow, gated blocks and full-resolution couplings": Case(
        Glow,
        lambda: _glow(
            (1, 8, 8),
            levels=2,
            blocks=(2, 1),
            hidden=(4, 6),
            net="gated",
            net_layers=1,
            full_res=2,
            full_res_hidden=4,
            logit_alpha=1e-5,
        ),  # fmt: skip
        64,
        codomain=_image_domain((1, 8, 8)),
        batch=2,
    ),
    "glow, 3 channels, one level, checkerboard split, exp scale, no logit": Case(
        Glow,
        lambda: _glow(
            (3, 4, 4), levels=1, blocks=2, hidden=4, split_mode="checkerboard", scale_map="exp"
        ),
        48,
        codomain=_image_domain((3, 4, 4)),
    ),
    "variational dequantizer": Case(
        glow_layers.VariationalDequantizer,
        _dequantizer,
        16,
        domain=lambda n: _unit(n, 16),
        invertible=False,
    ),
    # dct_matrix is float32, orthonormal to about 1e-7 only: the density's implied log-det is
    # off by that much per coordinate (log p(z) assumes an exact rotation).
    "spectral base's draw": Case(
        glow_layers.SpectralGlowBase, _spectral_base, 24, invertible=False, batch=3, tol=1e-5
    ),
    # lesson 08: the pixels ↔ model coordinates of inpainting
    "inpainting coordinates": Case(
        coordinates,
        lambda: Pixels(1e-5),
        6,
        domain=lambda n: _unit(n, 6, 0.001, 0.999),
        codomain=lambda n: 3 * torch.randn(n, 6, dtype=DTYPE),
    ),
}
INVERTIBLE = [name for name, case in CASES.items() if case.invertible]


def close(actual: Tensor, expected: Tensor, case: Case, what: str) -> None:
    torch.testing.assert_close(
        actual, expected, atol=case.tol, rtol=case.tol, msg=lambda m: f"{what}: {m}"
    )


def autograd_log_dets(fn: Callable[[Tensor], Tensor], v: Tensor) -> Tensor:
    """``log|det J|`` of each row's Jacobian, from the full autograd Jacobian of the batch.

    Rows of a batch are independent, so the Jacobian of the whole batch is
    block-diagonal; that is checked too.
    """
    n, d = v.shape
    jac = torch.autograd.functional.jacobian(fn, v, vectorize=True)  # (n, d, n, d)
    rows = torch.arange(n)
    blocks = jac[rows, :, rows, :]  # (n, d, d)
    off = jac.clone()
    off[rows, :, rows, :] = 0
    assert torch.all(off == 0), "rows of a batch interact"
    return torch.linalg.slogdet(blocks)[1]


@pytest.mark.parametrize("name", INVERTIBLE)
def test_inverse_after_forward_is_the_identity(name: str) -> None:
    case = CASES[name]
    layer = case.make()
    z = case.draw(3 * case.batch)
    x, ld_forward = layer.forward(z)
    assert x.shape == z.shape and ld_forward.shape == (len(z),)
    assert (x - z).abs().max() > 1e-2, (
        "the layer should move points (a perturbed layer is no identity)"
    )
    z_back, ld_inverse = layer.inverse(x)
    close(z_back, z, case, "inverse(forward(z))")
    close(ld_inverse, -ld_forward, case, "the inverse's log-det")
    x = case.draw(3 * case.batch, inverse_side=True)
    close(layer.forward(layer.inverse(x)[0])[0], x, case, "forward(inverse(x))")


@pytest.mark.parametrize("name", CASES)
def test_log_det_is_autograds(name: str) -> None:
    case = CASES[name]
    layer = case.make()
    z = case.draw(case.batch)
    x, ld_forward = layer.forward(z)
    if case.volume_preserving:
        assert torch.all(ld_forward == 0)
    else:
        assert ld_forward.abs().max() > 1e-3, "a log-det of 0: is the layer still the identity?"
    close(ld_forward, autograd_log_dets(lambda v: layer.forward(v)[0], z), case, "forward log-det")
    if not case.invertible:
        return
    x = case.draw(case.batch, inverse_side=True)
    z, ld_inverse = layer.inverse(x)
    if case.differentiable_inverse:
        want = autograd_log_dets(lambda v: layer.inverse(v)[0], x)
    else:
        want = -autograd_log_dets(lambda v: layer.forward(v)[0], z.detach())
    close(ld_inverse, want, case, "inverse log-det")


# ------------------------------------------------------------ the inventory

#: The modules whose layers the course teaches.
LAYER_MODULES = [
    "course_utils.flows2d.bijections",
    "course_utils.flows2d.flows",
    "course_utils.flows2d.conditional",
    "course_utils.flows2d.autoregressive",
    "course_utils.flows2d.inference",
    "course_utils.flows2d.continuous",
    "course_utils.flows2d.models2d",
    "course_utils.glow.layers",
    "course_utils.glow.model",
    "course_utils.inpaint.flow",
]


def test_every_invertible_class_of_the_course_has_a_case() -> None:
    """A public class with an ``inverse`` (a new layer, say) must be added to :data:`CASES`."""
    covered = {case.covers for case in CASES.values()}
    missing = []
    for module_name in LAYER_MODULES:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and obj.__module__ == module_name
                and not name.startswith("_")
                and callable(getattr(obj, "inverse", None))
                and not any(issubclass(c, obj) for c in covered if inspect.isclass(c))
            ):
                missing.append(f"{module_name}.{name}")
    assert not missing, f"invertible classes without a conformance case: {missing}"
