"""The multi-scale flow of the UvA Deep Learning tutorial 11, reimplemented for comparison.

The model is the ``create_multiscale_flow()`` flow of tutorial 11, "Normalizing
Flows for image modeling", by Phillip Lippe (UvA Deep Learning Course,
https://uvadlc-notebooks.readthedocs.io, notebook
``docs/tutorial_notebooks/tutorial11/NF_image_modeling.ipynb`` of
``github.com/phlippe/uvadlc_notebooks``). We benchmark the course's Glow against
it. The code here is written anew from a reading of the notebook, without its
PyTorch Lightning wrapper; the architecture, its initialisation, its
bits-per-dimension and its sampling follow the tutorial exactly, so that
``build_uva_multiscale()`` has the tutorial's 1,711,818 parameters.

The flow, from a ``(B, 1, 28, 28)`` image with integer values 0..255 to a
``(B, 8, 7, 7)`` latent:

1. variational dequantization: ``u ~ U[0, 1)`` goes through a logit, 4
   checkerboard affine couplings (``GatedConvNet(c_in=2, c_out=2, c_hidden=16)``
   that also sees the image scaled to [-1, 1]) and a sigmoid; then
   ``x' = (x + u) / 256`` and a logit (with ``alpha = 1e-5``) to the real line;
2. 2 checkerboard couplings (``c_hidden=32``) at ``1 x 28 x 28``;
3. squeeze to ``4 x 14 x 14`` and 2 channel couplings (``c_hidden=48``);
4. split: channels 2..3 leave the flow under a standard normal prior;
5. squeeze to ``8 x 7 x 7`` and 4 channel couplings (``c_hidden=64``);
6. a standard normal prior on the ``8 x 7 x 7`` latent.

Training as in the tutorial: Adam (lr 1e-3), ``StepLR(step_size=1, gamma=0.99)``
stepped once per epoch, gradient norm clipped to 1.0, batches of 128, for at most
200 epochs (see :func:`uva_optimizer` and the ``TUTORIAL_*`` constants).

Usage::

    from benchmarks.uva_multiscale import build_uva_multiscale, uva_optimizer

    torch.manual_seed(42)
    model = build_uva_multiscale()
    optimizer, scheduler = uva_optimizer(model)
    loss = model.bits_per_dim_each(images_uint8).mean()  # the training loss
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: The parameter count that the tutorial prints for its multi-scale flow.
TUTORIAL_NUM_PARAMS = 1_711_818
#: The tutorial's training batch size (``shuffle=True, drop_last=True``).
TUTORIAL_BATCH_SIZE = 128
#: The tutorial's training images per epoch: its MNIST training split is 50,000 of the
#: 60,000 training images (10,000 are held out for validation), so with
#: ``drop_last=True`` an epoch is 390 batches of 128 = 49,920 images.
TUTORIAL_TRAIN_IMAGES = 50_000
#: The tutorial's maximum number of epochs (Lightning ``max_epochs``).
TUTORIAL_MAX_EPOCHS = 200
#: The tutorial's gradient clipping (Lightning ``gradient_clip_val``, by the norm).
TUTORIAL_GRAD_CLIP_NORM = 1.0
#: The number of importance samples of the tutorial's test bits/dim.
TUTORIAL_IMPORT_SAMPLES = 8

IMAGE_SHAPE = (1, 28, 28)
LATENT_SHAPE = (8, 7, 7)
QUANTS = 256
ALPHA = 1e-5
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _standard_normal_log_prob(z: Tensor) -> Tensor:
    """Per-sample log density of a standard normal, summed over all but the batch axis."""
    return (-0.5 * z.square() - _HALF_LOG_2PI).flatten(1).sum(dim=1)


def _dims(z: Tensor) -> int:
    """Number of dimensions of one sample of ``z`` (all but the batch axis)."""
    return math.prod(z.shape[1:])


# --------------------------------------------------------------------------- masks


def checkerboard_mask(height: int, width: int, invert: bool = False) -> Tensor:
    """A ``(1, 1, height, width)`` checkerboard of 0/1 floats.

    As in the tutorial, pixel ``(i, j)`` is 1 (kept, fed to the network) where
    ``i + j`` is odd, 0 (transformed) where it is even; ``invert`` swaps the two.

    Args:
        height: Image height.
        width: Image width.
        invert: Whether to swap ones and zeros.

    Returns:
        The mask, of dtype float32.
    """
    rows = torch.arange(height).view(-1, 1)
    cols = torch.arange(width).view(1, -1)
    mask = ((rows + cols) % 2).to(torch.float32)
    if invert:
        mask = 1.0 - mask
    return mask.view(1, 1, height, width)


def channel_mask(channels: int, invert: bool = False) -> Tensor:
    """A ``(1, channels, 1, 1)`` mask: 1 on the first ``channels // 2`` channels, 0 on the rest.

    Args:
        channels: Number of channels.
        invert: Whether to swap ones and zeros.

    Returns:
        The mask, of dtype float32.
    """
    mask = (torch.arange(channels) < channels // 2).to(torch.float32)
    if invert:
        mask = 1.0 - mask
    return mask.view(1, channels, 1, 1)


# ------------------------------------------------------------------------ networks


class ConcatELU(nn.Module):
    """``cat([elu(x), elu(-x)])`` along the channels: doubles them, keeps gradients for any x."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply the activation.

        Args:
            x: A ``(B, C, H, W)`` tensor.

        Returns:
            A ``(B, 2C, H, W)`` tensor.
        """
        return torch.cat([F.elu(x), F.elu(-x)], dim=1)


class LayerNormChannels(nn.Module):
    """Layer norm over the channels of every pixel, with a per-channel gain and bias.

    Args:
        channels: Number of channels.
        eps: Added to the (biased) variance before the square root.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape ``(B, C, H, W)`` over ``C``."""
        mean = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.gamma + self.beta


class GatedConv(nn.Module):
    """Residual block: ConcatELU, 3x3 conv, ConcatELU, 1x1 conv, then a sigmoid-gated residual.

    Args:
        channels: Input (and output) channels.
        hidden: Channels of the 3x3 convolution.
    """

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            ConcatELU(),
            nn.Conv2d(2 * channels, hidden, kernel_size=3, padding=1),
            ConcatELU(),
            nn.Conv2d(2 * hidden, 2 * channels, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x + value * sigmoid(gate)`` where ``value, gate`` split the block's output."""
        value, gate = self.net(x).chunk(2, dim=1)
        return x + value * torch.sigmoid(gate)


class GatedConvNet(nn.Module):
    """The tutorial's coupling network: 3x3 conv, gated blocks with layer norm, 3x3 conv.

    The last convolution starts at zero, so every coupling starts as the identity.

    Args:
        c_in: Input channels.
        c_hidden: Hidden channels.
        c_out: Output channels; ``-1`` means ``2 * c_in`` (a scale and a shift per channel).
        num_layers: Number of ``GatedConv`` + ``LayerNormChannels`` pairs.
    """

    def __init__(self, c_in: int, c_hidden: int = 32, c_out: int = -1, num_layers: int = 3) -> None:
        super().__init__()
        c_out = c_out if c_out > 0 else 2 * c_in
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_hidden, kernel_size=3, padding=1)]
        for _ in range(num_layers):
            layers += [GatedConv(c_hidden, c_hidden), LayerNormChannels(c_hidden)]
        last = nn.Conv2d(2 * c_hidden, c_out, kernel_size=3, padding=1)
        layers += [ConcatELU(), last]
        self.nn = nn.Sequential(*layers)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the network to ``x`` of shape ``(B, c_in, H, W)``."""
        return self.nn(x)


# --------------------------------------------------------------------------- flows


class CouplingLayer(nn.Module):
    """Masked affine coupling: ``z' = (z + t) * exp(s)`` on the pixels/channels where mask is 0.

    ``s, t`` come from ``network(z * mask)`` (with the conditioning image concatenated
    along the channels when one is given); ``s`` is soft-bounded as
    ``tanh(s / exp(f)) * exp(f)`` with a learned per-channel ``f`` that starts at 0.

    Args:
        network: Maps the masked input (plus condition) to ``2 * channels`` channels.
        mask: 1 where the input is kept and fed to the network, 0 where it is transformed.
        channels: Channels of ``z``.
    """

    def __init__(self, network: nn.Module, mask: Tensor, channels: int) -> None:
        super().__init__()
        self.network = network
        self.scaling_factor = nn.Parameter(torch.zeros(channels))
        self.register_buffer("mask", mask)

    def forward(
        self, z: Tensor, ldj: Tensor, reverse: bool = False, condition: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Transform ``z`` (or invert the transform) and update the log-determinant.

        Args:
            z: A ``(B, C, H, W)`` tensor.
            ldj: ``(B,)`` running log |det Jacobian|; this layer's term is added
                (forward) or subtracted (reverse).
            reverse: Whether to apply the inverse.
            condition: Optional extra input of the network (the image, in the
                variational dequantization).

        Returns:
            The transformed tensor and the updated ``ldj``.
        """
        mask = self.mask
        z_in = z * mask
        if condition is not None:
            z_in = torch.cat([z_in, condition], dim=1)
        s, t = self.network(z_in).chunk(2, dim=1)
        bound = self.scaling_factor.exp().view(1, -1, 1, 1)
        s = torch.tanh(s / bound) * bound
        s = s * (1 - mask)
        t = t * (1 - mask)
        log_det = s.flatten(1).sum(dim=1)
        if not reverse:
            return (z + t) * torch.exp(s), ldj + log_det
        return z * torch.exp(-s) - t, ldj - log_det


class VariationalDequantization(nn.Module):
    """Integer pixels to the real line, with learned, image-conditioned dequantization noise.

    Forward: ``u0 ~ U[0, 1)``; ``u = sigmoid(flows(logit(u0); image))`` with the image
    scaled to [-1, 1] as condition; ``y = (x + u) / 256``; ``z = logit(y)``. The
    log-determinants of all of it are added to ``ldj``, so ``ldj`` also carries
    ``-log q(u | x)``. Every logit and sigmoid rescales by ``alpha`` as the
    tutorial's: ``logit(y * (1 - alpha) + alpha / 2)``.

    Reverse: ``x = clamp(floor(256 * sigmoid-inverse-of-the-logit(z)), 0, 255)``.

    Args:
        flows: The couplings of the noise (each takes ``condition=``).
        alpha: The logit's boundary margin.
        quants: Number of pixel values.
    """

    def __init__(self, flows: list[nn.Module], alpha: float = ALPHA, quants: int = QUANTS) -> None:
        super().__init__()
        self.flows = nn.ModuleList(flows)
        self.alpha = alpha
        self.quants = quants

    def logit(self, y: Tensor, ldj: Tensor) -> tuple[Tensor, Tensor]:
        """``(0, 1) -> R``: ``logit(y * (1 - alpha) + alpha / 2)``, with its log-determinant."""
        y = y * (1 - self.alpha) + 0.5 * self.alpha
        log_y, log_1my = torch.log(y), torch.log(1 - y)
        log_det = math.log(1 - self.alpha) * _dims(y) - (log_y + log_1my).flatten(1).sum(dim=1)
        return log_y - log_1my, ldj + log_det

    def sigmoid(self, z: Tensor, ldj: Tensor) -> tuple[Tensor, Tensor]:
        """``R -> (0, 1)``: the inverse of :meth:`logit`, with its log-determinant."""
        log_det = (-z - 2 * F.softplus(-z)).flatten(1).sum(dim=1)
        log_det = log_det - math.log(1 - self.alpha) * _dims(z)
        y = (torch.sigmoid(z) - 0.5 * self.alpha) / (1 - self.alpha)
        return y, ldj + log_det

    def forward(
        self, x: Tensor, ldj: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Dequantize integer images and map them to the real line.

        Args:
            x: ``(B, 1, H, W)`` integer pixel values 0..255 (any dtype).
            ldj: ``(B,)`` running log-determinant.
            generator: Optional generator of the uniform noise ``u0`` (default: torch's global).

        Returns:
            The continuous ``(B, 1, H, W)`` float32 tensor and the updated ``ldj``.
        """
        x = x.to(torch.float32)
        image = x / 255.0 * 2 - 1
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        noise, ldj = self.logit(noise, ldj)
        for flow in self.flows:
            noise, ldj = flow(noise, ldj, condition=image)
        noise, ldj = self.sigmoid(noise, ldj)
        y = (x + noise) / self.quants
        ldj = ldj - math.log(self.quants) * _dims(y)
        return self.logit(y, ldj)

    def discretize(self, z: Tensor) -> Tensor:
        """Invert :meth:`forward` up to the noise: real-valued ``z`` to int64 pixels 0..255."""
        y, _ = self.sigmoid(z, torch.zeros(z.shape[0], device=z.device))
        return torch.floor(y * self.quants).clamp(0, self.quants - 1).to(torch.int64)


class SqueezeFlow(nn.Module):
    """``(C, H, W) -> (4C, H/2, W/2)``: each 2x2 block to 4 channels (volume-preserving).

    Output channel ``4c + 2i + j`` holds pixel ``(2h + i, 2w + j)`` of channel ``c``,
    the tutorial's ordering (that of ``pixel_unshuffle``).
    """

    def forward(self, z: Tensor, ldj: Tensor, reverse: bool = False) -> tuple[Tensor, Tensor]:
        """Squeeze (or unsqueeze, with ``reverse``) ``z``; ``ldj`` is unchanged."""
        return (F.pixel_shuffle(z, 2) if reverse else F.pixel_unshuffle(z, 2)), ldj


class SplitFlow(nn.Module):
    """Drops the second half of the channels from the flow, under a standard normal prior.

    Forward: ``z, z_split = z.chunk(2)``; ``log N(z_split; 0, I)`` is added to ``ldj``.
    Reverse: ``z_split`` (sampled from the prior unless given) is concatenated back
    and its log density subtracted.
    """

    def forward(
        self,
        z: Tensor,
        ldj: Tensor,
        reverse: bool = False,
        z_split: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Split (or, with ``reverse``, re-join) the channels of ``z``.

        Args:
            z: ``(B, C, H, W)``; ``(B, C / 2, H, W)`` in reverse.
            ldj: ``(B,)`` running log-determinant.
            reverse: Whether to re-join.
            z_split: In reverse, the half to re-join; sampled from N(0, I) if ``None``.
            generator: Optional generator of that sample.

        Returns:
            The kept half (forward) or the re-joined tensor (reverse), and the updated ``ldj``.
        """
        if not reverse:
            z, z_split = z.chunk(2, dim=1)
            return z, ldj + _standard_normal_log_prob(z_split)
        if z_split is None:
            z_split = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        return torch.cat([z, z_split], dim=1), ldj - _standard_normal_log_prob(z_split)


# --------------------------------------------------------------------------- model


class UvaMultiscaleFlow(nn.Module):
    """The tutorial's multi-scale image flow (its ``ImageFlow`` with ``create_multiscale_flow``).

    ``flows[0]`` is the variational dequantization, ``flows[1:]`` the continuous flow
    to the ``(8, 7, 7)`` latent, whose prior is a standard normal.

    Args:
        flows: The layers, dequantization first.
    """

    def __init__(self, flows: list[nn.Module]) -> None:
        super().__init__()
        self.flows = nn.ModuleList(flows)

    @property
    def device(self) -> torch.device:
        """The device of the parameters."""
        return next(self.parameters()).device

    def dequantize(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run the variational dequantization only.

        Args:
            images: ``(B, 1, 28, 28)`` integer pixels 0..255 (e.g. uint8).
            generator: Optional generator of the dequantization noise.

        Returns:
            The continuous ``(B, 1, 28, 28)`` input of the flow and its ``(B,)`` log-determinant.
        """
        ldj = torch.zeros(images.shape[0], device=images.device)
        return self.flows[0](images, ldj, generator=generator)

    def transform(self, z: Tensor, ldj: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """Run the continuous layers ``flows[1:]`` forward.

        Args:
            z: ``(B, 1, 28, 28)`` dequantized input (from :meth:`dequantize`).
            ldj: ``(B,)`` running log-determinant.

        Returns:
            The ``(B, 8, 7, 7)`` latent, the updated ``ldj`` (including the split-off
            half's log prior) and the split-off halves (for exact inversion).
        """
        splits: list[Tensor] = []
        for flow in self.flows[1:]:
            if isinstance(flow, SplitFlow):
                splits.append(z.chunk(2, dim=1)[1])
            z, ldj = flow(z, ldj)
        return z, ldj, splits

    def inverse(
        self,
        z: Tensor,
        splits: list[Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Run ``flows[1:]`` in reverse, from a latent to the continuous (dequantized) input.

        Args:
            z: ``(B, 8, 7, 7)`` latent.
            splits: The split-off halves (as returned by :meth:`transform`); where
                ``None``, they are sampled from their standard normal prior, as the
                tutorial's sampling does.
            generator: Optional generator of those samples.

        Returns:
            The ``(B, 1, 28, 28)`` continuous input.
        """
        remaining = list(splits) if splits is not None else None
        ldj = torch.zeros(z.shape[0], device=z.device)
        for flow in reversed(self.flows[1:]):
            if isinstance(flow, SplitFlow):
                given = remaining.pop() if remaining is not None else None
                z, ldj = flow(z, ldj, reverse=True, z_split=given, generator=generator)
            else:
                z, ldj = flow(z, ldj, reverse=True)
        return z

    def encode(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Images to latents, as the tutorial's ``encode``.

        Args:
            images: ``(B, 1, 28, 28)`` integer pixels 0..255.
            generator: Optional generator of the dequantization noise.

        Returns:
            The ``(B, 8, 7, 7)`` latent and the ``(B,)`` total log-determinant.
        """
        z, ldj = self.dequantize(images, generator)
        z, ldj, _ = self.transform(z, ldj)
        return z, ldj

    def log_likelihood_each(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Per-image variational lower bound on ``log p(x)`` in nats (``return_ll=True``).

        Args:
            images: ``(B, 1, 28, 28)`` integer pixels 0..255.
            generator: Optional generator of the dequantization noise.

        Returns:
            ``(B,)`` log-likelihoods (one noise sample each, so random).
        """
        z, ldj = self.encode(images, generator)
        return ldj + _standard_normal_log_prob(z)

    def bits_per_dim_each(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Per-image bits/dim, as the tutorial's ``_get_likelihood`` (before its mean).

        ``-log p(x) * log2(e) / 784`` with one sample of the dequantization noise, so
        the value is random; its batch mean is the training loss.

        Args:
            images: ``(B, 1, 28, 28)`` integer pixels 0..255 (e.g. uint8).
            generator: Optional generator of the dequantization noise.

        Returns:
            ``(B,)`` bits/dim.
        """
        log_px = self.log_likelihood_each(images, generator)
        return -log_px / (math.log(2) * _dims(images))

    def importance_bits_per_dim_each(
        self,
        images: Tensor,
        import_samples: int = TUTORIAL_IMPORT_SAMPLES,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Per-image bits/dim with importance sampling, as the tutorial's ``test_step``.

        ``log p(x) ~ logsumexp_m log p_m(x) - log M`` over ``M`` dequantization samples;
        the tutorial reports its test and validation bits/dim this way with ``M = 8``.

        Args:
            images: ``(B, 1, 28, 28)`` integer pixels 0..255.
            import_samples: ``M``.
            generator: Optional generator of the dequantization noise.

        Returns:
            ``(B,)`` bits/dim.
        """
        log_px = torch.stack(
            [self.log_likelihood_each(images, generator) for _ in range(import_samples)], dim=-1
        )
        log_px = torch.logsumexp(log_px, dim=-1) - math.log(import_samples)
        return -log_px / (math.log(2) * _dims(images))

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, z: Tensor | None = None
    ) -> Tensor:
        """Sample images as the tutorial's ``sample(img_shape=[n, 8, 7, 7])``, scaled to [0, 1].

        The latent and the split-off half are drawn from their standard normal
        priors; the result, the tutorial's integers 0..255, is divided by 255.

        Args:
            n: Number of images.
            generator: Optional generator of the latent samples.
            z: Optional ``(n, 8, 7, 7)`` latent to decode instead of a prior sample.

        Returns:
            ``(n, 1, 28, 28)`` float32 images with values ``k / 255``, ``k`` in 0..255.
        """
        device = self.device
        if z is None:
            z = torch.randn((n, *LATENT_SHAPE), generator=generator, device=device)
        x = self.inverse(z.to(device), generator=generator)
        return self.flows[0].discretize(x).to(torch.float32) / 255.0


def build_uva_multiscale() -> UvaMultiscaleFlow:
    """Build the tutorial's ``create_multiscale_flow()`` model (1,711,818 parameters).

    The modules are created in the tutorial's order, so that after the same
    ``torch.manual_seed`` the initial weights are the tutorial's.

    Returns:
        The flow, on the CPU, in training mode.
    """
    vardeq = [
        CouplingLayer(
            GatedConvNet(c_in=2, c_out=2, c_hidden=16),
            checkerboard_mask(28, 28, invert=i % 2 == 1),
            channels=1,
        )
        for i in range(4)
    ]
    layers: list[nn.Module] = [VariationalDequantization(vardeq)]
    layers += [
        CouplingLayer(
            GatedConvNet(c_in=1, c_hidden=32),
            checkerboard_mask(28, 28, invert=i % 2 == 1),
            channels=1,
        )
        for i in range(2)
    ]
    layers += [SqueezeFlow()]
    layers += [
        CouplingLayer(
            GatedConvNet(c_in=4, c_hidden=48), channel_mask(4, invert=i % 2 == 1), channels=4
        )
        for i in range(2)
    ]
    layers += [SplitFlow(), SqueezeFlow()]
    layers += [
        CouplingLayer(
            GatedConvNet(c_in=8, c_hidden=64), channel_mask(8, invert=i % 2 == 1), channels=8
        )
        for i in range(4)
    ]
    return UvaMultiscaleFlow(layers)


def uva_optimizer(
    model: nn.Module,
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.StepLR]:
    """The tutorial's optimiser and learning-rate schedule.

    Adam with lr 1e-3 (other settings PyTorch's defaults) and
    ``StepLR(step_size=1, gamma=0.99)``, which the tutorial (PyTorch Lightning's
    default interval) steps once per **epoch**: 390 batches of 128 from its 50,000-image
    MNIST training split (``drop_last=True``, 49,920 images; the other 10,000 of
    the 60,000 training images are its validation split). Call ``scheduler.step()``
    after every ~50,000 training images to match it. The tutorial also clips the
    gradient norm to 1.0 (``TUTORIAL_GRAD_CLIP_NORM``) before every step.

    Args:
        model: The flow.

    Returns:
        ``(optimizer, scheduler)``.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.99)
    return optimizer, scheduler
