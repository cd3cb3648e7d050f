"""The layers that make lesson 07's Glow learn fast on a CPU, as normflows parts.

normflows gives the Glow backbone (ActNorm, invertible 1×1 convolution, affine
coupling, squeeze, split, ``MultiscaleFlow``). Two layers are added here:

* :class:`GatedConvNet`, the network inside a coupling: a 3×3 convolution,
  then residual *gated* convolutions each followed by a normalisation over the
  channels, and a zero-initialised output (so every coupling starts as the
  identity). Gates and normalisation make the network train quickly from a
  small batch, which matters more than its size when a CPU sees only a few
  thousand images a minute.
* :class:`MaskedAffineCoupling`, an affine coupling through a mask; with a
  checkerboard mask it works at full resolution, keeping the pixels of one
  colour of a checkerboard and transforming the others from them. A Glow
  usually squeezes the image before its first coupling, so neighbouring
  pixels are only related after they were stacked into channels; a
  checkerboard coupling relates them where they are.

And one base distribution: :class:`SpectralGlowBase` reads each latent in the
2-D cosine basis (:func:`dct_matrix`), with a mean and scale per wave, so a
quantity shared by the whole image (lesson 09's background colour) is one
latent coordinate instead of an agreement among independent positions.

Direction convention (normflows'): ``forward`` maps latent → data, ``inverse``
maps data → latent, and each returns the log|det| of the map it applies.
"""

from __future__ import annotations

import math

import normflows as nf
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConcatELU",
    "ChannelNorm",
    "GatedResidual",
    "GatedConvNet",
    "checkerboard",
    "channel_mask",
    "MaskedAffineCoupling",
    "VariationalDequantizer",
    "glow_block",
    "dct_matrix",
    "SpectralGlowBase",
    "ClassConditionalBase",
    "base_from_noise",
    "noise_from_latent",
]

Tensor = torch.Tensor


class ConcatELU(nn.Module):
    """ELU of ``x`` and of ``−x`` stacked along the channels: keeps both signs' information."""

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(torch.cat([x, -x], dim=1))


class ChannelNorm(nn.Module):
    """Layer normalisation over the channels of each pixel, with a learned gain and bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GatedResidual(nn.Module):
    """``x + a · σ(g)``, where ``(a, g)`` come from a 3×3 then a 1×1 convolution of ``x``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            ConcatELU(),
            nn.Conv2d(2 * channels, channels, 3, padding=1),
            ConcatELU(),
            nn.Conv2d(2 * channels, 2 * channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.net(x).chunk(2, dim=1)
        return x + value * torch.sigmoid(gate)


class GatedConvNet(nn.Module):
    """The coupling network: ``(batch, c_in, H, W) -> (batch, c_out, H, W)``.

    Args:
        c_in: input channels.
        c_out: output channels (two per transformed channel: shift and scale).
        hidden: channels of the hidden layers.
        layers: gated residual blocks, each followed by a :class:`ChannelNorm`.

    The last convolution starts at zero, so the coupling starts as the identity.

    >>> net = GatedConvNet(2, 4, hidden=8, layers=1)
    >>> out = net(torch.randn(3, 2, 6, 6)).detach()
    >>> tuple(out.shape), float(out.abs().max())
    ((3, 4, 6, 6), 0.0)
    """

    def __init__(self, c_in: int, c_out: int, hidden: int = 32, layers: int = 2) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(c_in, hidden, 3, padding=1)]
        for _ in range(layers):
            blocks += [GatedResidual(hidden), ChannelNorm(hidden)]
        blocks += [ConcatELU(), nn.Conv2d(2 * hidden, c_out, 3, padding=1)]
        self.net = nn.Sequential(*blocks)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def checkerboard(height: int, width: int, invert: bool = False) -> Tensor:
    """A ``(1, 1, H, W)`` mask of 0s and 1s, 1 where ``(row + col)`` is even (odd if inverted).

    >>> checkerboard(2, 3).int().tolist()
    [[[[1, 0, 1], [0, 1, 0]]]]
    """
    rows = torch.arange(height)[:, None]
    cols = torch.arange(width)[None, :]
    mask = ((rows + cols) % 2 == 0).float()
    return (1 - mask if invert else mask)[None, None]


def channel_mask(channels: int, invert: bool = False) -> Tensor:
    """A ``(1, C, 1, 1)`` mask: 1 on the first half of the channels (the second if inverted).

    >>> channel_mask(4).flatten().int().tolist()
    [1, 1, 0, 0]
    """
    mask = (torch.arange(channels) < (channels + 1) // 2).float()
    return (1 - mask if invert else mask)[None, :, None, None]


class MaskedAffineCoupling(nf.flows.Flow):
    """Affine coupling through a mask: the kept values decide the others' shift and scale.

    Data → latent (``inverse``): ``z = b·x + (1 − b)·((x + t)·e^{s})`` with
    ``(t, s) = net(b·x)``, so ``log|det| = Σ (1 − b)·s``. With a
    :func:`checkerboard` mask it relates neighbouring pixels at full
    resolution; with a :func:`channel_mask` it is Glow's channel coupling. The
    log-scale is bounded, ``s = c·tanh(ŝ / c)`` with a learned ``c`` per
    channel: a coupling can stretch or shrink, but no early step can blow a
    value up.

    Args:
        mask: ``(1, C, H, W)``, ``(1, 1, H, W)`` or ``(1, C, 1, 1)`` of 0s and 1s.
        channels: channels ``C`` of its input.
        hidden: hidden channels of its :class:`GatedConvNet`.
        layers: gated blocks of that network.
        context: channels of an optional conditioning input that the network
            also sees (the image, for :class:`VariationalDequantizer`).
    """

    def __init__(
        self, mask: Tensor, channels: int, hidden: int = 32, layers: int = 2, context: int = 0
    ) -> None:
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.net = GatedConvNet(channels + context, 2 * channels, hidden, layers)
        self.log_scale_bound = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def _shift_and_log_scale(
        self, kept: Tensor, context: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        if context is not None:
            kept = torch.cat([kept, context], dim=1)
        shift, raw = self.net(kept).chunk(2, dim=1)
        bound = self.log_scale_bound.exp()
        log_scale = torch.tanh(raw / bound) * bound
        free = 1 - self.mask
        return shift * free, log_scale * free

    def inverse(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        shift, log_scale = self._shift_and_log_scale(x * self.mask, context)
        z = (x + shift) * torch.exp(log_scale)
        return z, log_scale.sum(dim=(1, 2, 3))

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        shift, log_scale = self._shift_and_log_scale(z * self.mask, context)
        x = z * torch.exp(-log_scale) - shift
        return x, -log_scale.sum(dim=(1, 2, 3))


class VariationalDequantizer(nn.Module):
    """Learned dequantization noise ``v ~ q(v | k)`` for 8-bit images ``k``.

    Uniform noise ``w ~ U[0, 1)`` goes through ``logit``, a few checkerboard
    couplings that see the image, and ``sigmoid``, so ``v`` stays in ``(0, 1)``
    and ``q`` has an exact log-density, ``log q(v|k) = −log|∂v/∂w|``. With
    zero-initialised couplings it starts as uniform dequantization. Training
    ``log p((k + v)/256) − log q(v|k)`` tightens the bound on ``log P(k)``.

    Args:
        shape: ``(C, H, W)`` of the images.
        couplings: checkerboard couplings of the noise flow.
        hidden: hidden channels of their networks.
        layers: gated blocks of those networks.
    """

    def __init__(
        self, shape: tuple[int, int, int], couplings: int = 4, hidden: int = 16, layers: int = 2
    ) -> None:
        super().__init__()
        c, h, w = shape
        self.flows = nn.ModuleList(
            MaskedAffineCoupling(checkerboard(h, w, i % 2 == 1), c, hidden, layers, context=c)
            for i in range(couplings)
        )

    def forward(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(u, log_q)``: ``u = (k + v)/256`` in ``(0, 1)`` and ``log q(v|k)`` per image."""
        k = images.float()
        context = k / 127.5 - 1
        w = torch.rand(k.shape, generator=generator).to(k.device).clamp(1e-6, 1 - 1e-6)
        y = torch.log(w) - torch.log1p(-w)
        log_det = -(torch.log(w) + torch.log1p(-w)).sum(dim=(1, 2, 3))  # d logit(w) / dw
        for flow in self.flows:
            y, ld = flow(y, context)
            log_det = log_det + ld
        v = torch.sigmoid(y)
        log_det = log_det + (F.logsigmoid(y) + F.logsigmoid(-y)).sum(dim=(1, 2, 3))
        return (k + v) / 256.0, -log_det


def glow_block(
    channels: int, hidden: int, layers: int = 2, invert: bool = False, coupling: str = "masked"
) -> list[nf.flows.Flow]:
    """One Glow step, listed in normflows' order (latent → data): coupling, 1×1 conv, ActNorm.

    Args:
        channels: channels of the level.
        hidden: hidden channels of the coupling's :class:`GatedConvNet`.
        layers: its gated blocks.
        invert: which half of the channels the coupling keeps.
        coupling: ``"masked"`` (:class:`MaskedAffineCoupling`, bounded log-scale) or
            ``"normflows"`` (``nf.flows.AffineCouplingBlock`` with Glow's sigmoid scale,
            which can only shrink values on the way to the latent).
    """
    if coupling not in ("masked", "normflows"):
        raise ValueError(f"coupling must be 'masked' or 'normflows', got {coupling!r}")
    if coupling == "masked":
        first: nf.flows.Flow = MaskedAffineCoupling(
            channel_mask(channels, invert), channels, hidden, layers
        )
    else:
        net = GatedConvNet((channels + 1) // 2, 2 * (channels // 2), hidden, layers)
        first = nf.flows.AffineCouplingBlock(
            net, scale=True, scale_map="sigmoid", split_mode="channel"
        )
    block = [first]
    if channels > 1:
        block.append(nf.flows.Invertible1x1Conv(channels, use_lu=True))
    block.append(nf.flows.ActNorm((channels, 1, 1)))
    return block


def dct_matrix(n: int) -> Tensor:
    """The orthonormal DCT-II matrix ``D`` (``n × n``): ``D @ x`` are the cosine coefficients.

    Row 0 is the constant ``1/√n`` (the mean, scaled); ``D @ D.T`` is the identity.

    >>> d = dct_matrix(4)
    >>> bool(torch.allclose(d @ d.T, torch.eye(4), atol=1e-6))
    True
    """
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    d = torch.cos(torch.pi * (2 * i + 1) * k / (2 * n)) * (2.0 / n) ** 0.5
    d[0] /= 2**0.5
    return d.float()


class SpectralGlowBase(nf.distributions.BaseDistribution):
    """A Gaussian base whose axes are 2-D cosine waves instead of pixels.

    normflows' ``GlowBase`` gives every position of a channel the same mean and
    scale, independently: a flow whose couplings see 3×3 neighbourhoods then
    struggles to draw anything that is the same across the whole image (a
    plain background colour comes out in patches). Here the latent ``z`` of
    shape ``(C, H, W)`` is read in the orthonormal cosine basis,
    ``c = D_H z D_Wᵀ`` (:func:`dct_matrix`), and each coefficient has its own
    learned mean and log-scale: coefficient ``(0, 0)`` of a channel is its
    mean over the image, which can now vary a lot from image to image while
    the fine waves vary little. The change of basis is a rotation, so
    ``log p(z)`` is the diagonal Gaussian's ``log p(c)`` with no log-det term.
    At zero parameters it is the standard normal, like ``GlowBase``.

    Args:
        shape: ``(C, H, W)`` of the latent.
    """

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = tuple(shape)
        c, h, w = self.shape
        self.register_buffer("d_h", dct_matrix(h))
        self.register_buffer("d_w", dct_matrix(w))
        self.loc = nn.Parameter(torch.zeros(1, c, h, w))
        self.log_scale = nn.Parameter(torch.zeros(1, c, h, w))
        self.temperature: float | None = None  # set by MultiscaleFlow.set_temperature

    def _gauss(self, eps: Tensor, log_scale: Tensor) -> Tensor:
        """``log N`` of coefficients with standardised values ``eps``, log-scales ``log_scale``."""
        return (
            -0.5 * eps[0].numel() * math.log(2 * math.pi)
            - log_scale.expand_as(eps).flatten(1).sum(1)
            - 0.5 * eps.pow(2).flatten(1).sum(1)
        )

    def _temperature_log(self) -> float:
        return 0.0 if self.temperature is None else math.log(self.temperature)

    def from_noise(self, eps: Tensor) -> Tensor:
        """The latent ``z`` that standard normal noise ``eps`` ``(n, C, H, W)`` stands for.

        The temperature is not applied: noise ``T · eps`` stands for a draw at ``T``.
        """
        coeffs = self.loc + self.log_scale.exp() * eps
        return torch.einsum("ha,nchw,wb->ncab", self.d_h, coeffs, self.d_w)  # Dᵀ c D

    def forward(self, num_samples: int = 1, y=None) -> tuple[Tensor, Tensor]:
        eps = torch.randn((num_samples, *self.shape), dtype=self.loc.dtype, device=self.loc.device)
        t = math.exp(self._temperature_log())
        return self.from_noise(t * eps), self._gauss(eps, self.log_scale + self._temperature_log())

    def log_prob(self, z: Tensor, y=None) -> Tensor:
        log_scale = self.log_scale + self._temperature_log()
        coeffs = torch.einsum("ha,ncab,wb->nchw", self.d_h, z, self.d_w)  # D z Dᵀ
        return self._gauss((coeffs - self.loc) / log_scale.exp(), log_scale)


class ClassConditionalBase(nn.Module):
    """A Glow level's base distribution given a class: ``p(z | y)``.

    A base ``p₀`` (normflows' ``GlowBase`` or :class:`SpectralGlowBase`) moved
    and stretched by the class: ``z = m_y + exp(s_y) ⊙ z₀`` with ``z₀ ~ p₀``,
    where ``m_y`` and ``s_y`` are a learned mean and log-scale for every latent
    coordinate and every class (the rows of a one-hot class times two
    matrices, as normflows' class-conditional ``GlowBase`` does per channel),
    so ``log p(z | y) = log p₀((z − m_y) ⊙ exp(−s_y)) − Σ s_y``. At zero
    parameters every class has the base's own distribution. The temperature
    scales the base's spread, not the class's mean.

    Args:
        base: the unconditional base, with ``shape`` and ``temperature``.
        num_classes: how many classes, >= 2.
    """

    def __init__(self, base: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.base = base
        self.shape = tuple(base.shape)
        self.num_classes = num_classes
        self.class_loc = nn.Parameter(torch.zeros(num_classes, *self.shape))
        self.class_log_scale = nn.Parameter(torch.zeros(num_classes, *self.shape))

    @property
    def temperature(self) -> float | None:
        return self.base.temperature

    @temperature.setter
    def temperature(self, value: float | None) -> None:  # MultiscaleFlow.set_temperature
        self.base.temperature = value

    def _labels(self, y: Tensor | None) -> Tensor:
        if y is None:
            raise ValueError("a class-conditional base needs the classes y")
        return y

    def forward(self, num_samples: int = 1, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = self._labels(y)
        z0, log_p = self.base(len(y))
        s = self.class_log_scale[y]
        return self.class_loc[y] + s.exp() * z0, log_p - s.flatten(1).sum(1)

    def log_prob(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        y = self._labels(y)
        s = self.class_log_scale[y]
        return self.base.log_prob((z - self.class_loc[y]) * (-s).exp()) - s.flatten(1).sum(1)

    def log_prob_every_class(self, z: Tensor) -> Tensor:
        """``log p(z | y)`` for every class at once: ``(batch, num_classes)``."""
        n, k = len(z), self.num_classes
        zs = z.unsqueeze(1).expand(n, k, *self.shape).reshape(n * k, *self.shape)
        y = torch.arange(k, device=z.device).repeat(n)
        return self.log_prob(zs, y).view(n, k)


def base_from_noise(base: nn.Module, eps: Tensor) -> Tensor:
    """A Glow base's latent for standard normal noise ``eps``, with gradients to its parameters.

    For :class:`SpectralGlowBase` and normflows' ``GlowBase`` (whose mean and
    log-scale are stored as ``value · exp(value_logs · logscale_factor)``); the
    temperature is not applied (scale ``eps`` for that).
    """
    if isinstance(base, SpectralGlowBase):
        return base.from_noise(eps)
    if isinstance(base, nf.distributions.GlowBase):
        loc = base.loc * torch.exp(base.loc_logs * base.logscale_factor)
        log_scale = base.log_scale * torch.exp(base.log_scale_logs * base.logscale_factor)
        return loc + torch.exp(log_scale) * eps
    raise TypeError(f"not a Glow base distribution: {type(base).__name__}")


def noise_from_latent(base: nn.Module, z: Tensor) -> Tensor:
    """The standard normal noise that a latent ``z`` stands for: :func:`base_from_noise` undone.

    For a real image's latent it says where the image lies in the base, in the
    units the sampler draws in (its length is about ``√D`` for a typical one).
    """
    if isinstance(base, SpectralGlowBase):
        coeffs = torch.einsum("ha,ncab,wb->nchw", base.d_h, z, base.d_w)  # D z Dᵀ
        return (coeffs - base.loc) / base.log_scale.exp()
    if isinstance(base, nf.distributions.GlowBase):
        loc = base.loc * torch.exp(base.loc_logs * base.logscale_factor)
        log_scale = base.log_scale * torch.exp(base.log_scale_logs * base.logscale_factor)
        return (z - loc) / torch.exp(log_scale)
    raise TypeError(f"not a Glow base distribution: {type(base).__name__}")
