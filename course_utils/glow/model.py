"""Ready-made models on top of normflows: the multi-scale Glow of lesson 07.

Data convention (see :mod:`course_utils.core.metrics`): an 8-bit image ``k`` is
dequantized to ``u = (k + v) / 256`` with ``v ~ U[0, 1)``, so the model's
input lies in ``[0, 1)``. ``Glow.log_prob(u)`` is the exact log-density of
``u``; an optional logit pre-processing is part of the flow (its log|det| is
included), so bits/dim computed from it follow the stated convention.

Direction convention (normflows'): ``forward`` maps latent → data, ``inverse``
maps data → latent; ``forward_kld`` (the training loss) runs the inverse.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import normflows as nf
import numpy as np
import torch
from torch import nn

from course_utils.core.checks import (
    check_float,
    check_int,
    check_uint8_images,
    check_unit_images,
)
from course_utils.core.metrics import bits_per_dim
from course_utils.glow.layers import (
    ClassConditionalBase,
    MaskedAffineCoupling,
    SpectralGlowBase,
    VariationalDequantizer,
    checkerboard,
    glow_block,
)

__all__ = [
    "dequantize",
    "GlowConfig",
    "BATCH_CHUNK",
    "Glow",
    "log_prob_in_batches",
    "glow_checkpoint_state",
    "glow_from_state",
]

Tensor = torch.Tensor

# normflows' Invertible1x1Conv still calls torch.lu; the warning says nothing a learner can act on.
warnings.filterwarnings("ignore", message="torch.lu is deprecated")


def dequantize(images: Tensor | np.ndarray, generator: torch.Generator | None = None) -> Tensor:
    """Uniform dequantization ``u = (k + v) / 256`` of 8-bit images.

    Args:
        images: ``uint8`` images ``(batch, C, H, W)`` (or ``(batch, H, W)``,
            given a channel axis) with values ``k`` in 0..255; a tensor or a
            numpy array.
        generator: seeds the noise ``v ~ U[0, 1)``.

    Returns:
        float32 ``(batch, C, H, W)`` in ``[0, 1)``.

    Raises:
        ValueError: ``images`` is not ``uint8``, has another number of axes, or
            is one image in ``(H, W, C)`` layout (see
            :func:`course_utils.core.checks.check_uint8_images`).

    >>> u = dequantize(torch.full((2, 1, 2, 2), 255, dtype=torch.uint8))
    >>> bool((u >= 255 / 256).all() and (u < 1).all())
    True
    """
    images = check_uint8_images("images", images)
    noise = torch.rand(images.shape, generator=generator).to(images.device)
    return (images.float() + noise) / 256.0


@dataclass(frozen=True)
class GlowConfig:
    """Hyper-parameters of :class:`Glow`; stored in checkpoints to rebuild the model.

    Attributes:
        shape: ``(C, H, W)``; H and W divisible by ``2**levels``.
        levels: number of scales L (squeeze + K blocks + split per level).
        blocks: Glow blocks K per level (ActNorm, 1×1 conv, affine coupling).
            An int for every level, or one per level listed from the data side
            (finest first).
        hidden: channels of the coupling networks' hidden layers (an int, or
            one per level, finest first).
        net: the coupling network: ``"conv"`` is normflows' own ``GlowBlock``
            (a 3-layer CNN, sigmoid scale); ``"gated"`` is
            :func:`course_utils.glow.layers.glow_block` (gated residual CNN,
            masked coupling with a bounded log-scale).
        net_layers: gated blocks of each ``"gated"`` network.
        full_res: checkerboard couplings at full resolution, before the first
            squeeze (:class:`course_utils.glow.layers.MaskedAffineCoupling`).
        full_res_hidden: hidden channels of their networks.
        dequantizer: couplings of a variational dequantizer
            (:class:`course_utils.glow.layers.VariationalDequantizer`) that
            learns the noise ``v`` of ``u = (k + v)/256``; 0 dequantizes uniformly.
        dequantizer_hidden: hidden channels of its networks.
        split_mode: ``"channel"`` or ``"checkerboard"`` split inside ``"conv"`` couplings.
        scale_map: ``"sigmoid"`` (Glow) or ``"exp"`` (RealNVP) ``"conv"`` coupling scale.
        logit_alpha: if set, the flow starts with ``logit(α + (1 − 2α) u)``;
            None models ``u`` directly.
        base: each level's base distribution: ``"channel"`` is normflows'
            ``GlowBase`` (one mean and scale per channel, every position
            independent); ``"spectral"`` is
            :class:`course_utils.glow.layers.SpectralGlowBase` (a mean and scale
            per cosine wave, so a whole-image colour is one latent coordinate).
        num_classes: if set (>= 2), the Glow is class-conditional: each level's
            base is :class:`course_utils.glow.layers.ClassConditionalBase`
            (a learned mean and log-scale per class for every latent coordinate)
            and the model scores and draws ``p(x | y)``; None (or 0) is the
            unconditional Glow.
    """

    shape: tuple[int, int, int] = (1, 28, 28)
    levels: int = 2
    blocks: int | tuple[int, ...] = 8
    hidden: int | tuple[int, ...] = 64
    net: str = "conv"
    net_layers: int = 2
    full_res: int = 0
    full_res_hidden: int = 32
    dequantizer: int = 0
    dequantizer_hidden: int = 16
    split_mode: str = "channel"
    scale_map: str = "sigmoid"
    logit_alpha: float | None = None
    base: str = "channel"
    num_classes: int | None = None

    def __post_init__(self) -> None:
        # Checked here, not only where a Glow is built, so that a recipe with an
        # impossible model is refused where it is written (COURSE.replace(...)).
        set_ = object.__setattr__
        for name, minimum in (
            ("levels", 1),
            ("net_layers", 1),
            ("full_res", 0),
            ("full_res_hidden", 1),
            ("dequantizer", 0),
            ("dequantizer_hidden", 1),
        ):
            set_(self, name, check_int(name, getattr(self, name), minimum=minimum))
        shape = self.shape
        if (
            not isinstance(shape, (tuple, list))
            or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
        ):
            raise ValueError(f"shape must be (C, H, W), three positive ints, got {shape!r}")
        self.per_level("blocks")
        self.per_level("hidden")
        if self.num_classes is not None:
            classes = check_int("num_classes", self.num_classes, minimum=0)
            if classes == 1:
                raise ValueError(
                    "num_classes must be >= 2 for a class-conditional Glow (e.g. 10 for digits), "
                    "or 0/None for an unconditional one, got 1"
                )
            # 0 and None are the same unconditional model (equal configs, equal recipe digests).
            set_(self, "num_classes", classes or None)
        if self.logit_alpha is not None:
            alpha = check_float("logit_alpha", self.logit_alpha)
            if not 0 < alpha < 0.5:
                # α = 0 sends a pixel at 0 to logit(0) = −inf; α ≥ 0.5 folds [0, 1] onto itself.
                raise ValueError(
                    f"logit_alpha must lie in (0, 0.5) (e.g. 1e-5 or 0.05), or be None for no "
                    f"logit, got {self.logit_alpha!r}"
                )
            set_(self, "logit_alpha", alpha)

    def per_level(self, name: str) -> tuple[int, ...]:
        """``blocks`` or ``hidden`` as one value per level, finest first."""
        value = getattr(self, name)
        values = (value,) * self.levels if isinstance(value, int) else tuple(value)
        if len(values) != self.levels or not all(isinstance(v, int) and v > 0 for v in values):
            raise ValueError(
                f"{name} must be a positive int or {self.levels} positive ints (one per level, "
                f"finest first), got {value!r}"
            )
        return values


class _MultiscaleFlow(nf.MultiscaleFlow):
    """normflows' ``MultiscaleFlow`` whose ``log_prob`` starts from a zero per image.

    normflows starts the sum at the number 0, so a flow without a logit whose
    first layer on the data side returns one log|det| for the whole batch
    (ActNorm does) ends up adding a ``(batch,)`` tensor into a 0-d one, which
    fails (``output with shape [] doesn't match the broadcast shape``). The sum
    is otherwise the same, term for term.
    """

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        log_q = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        z = x
        if self.transform is not None:
            z, log_det = self.transform.inverse(z)
            log_q = log_q + log_det
        for i in range(len(self.q0) - 1, -1, -1):
            for j in range(len(self.flows[i]) - 1, -1, -1):
                z, log_det = self.flows[i][j].inverse(z)
                log_q = log_q + log_det
            if i > 0:
                [z, z_], log_det = self.merges[i - 1].inverse(z)
                log_q = log_q + log_det
            else:
                z_ = z
            log_q = log_q + (
                self.q0[i].log_prob(z_, y) if self.class_cond else self.q0[i].log_prob(z_)
            )
        return log_q


#: Images per pass when a Glow runs on many images at once (scoring a test
#: split, or the gradients of inpainting). On a laptop CPU small batches stay in
#: cache: scoring 1,000 test digits with glow-mnist took 3.2 s in batches of 50
#: against 8.0 s in batches of 500, and a gradient of log p for 256 digits 1.0 s
#: in batches of 64 against 1.6 s in one (2 threads). Results do not depend on
#: it (the dequantization noise is drawn in the same order).
BATCH_CHUNK = 50

#: The smallest pixel standard deviation :meth:`Glow.initialize` accepts: real
#: digits have about 0.3, a blank batch after dequantization about 0.001.
_MIN_INIT_STD = 0.01


class Glow(nn.Module):
    """A multi-scale Glow (normflows ``MultiscaleFlow``), unconditional or class-conditional.

    With ``num_classes`` set, every level's base depends on the class
    (:class:`course_utils.glow.layers.ClassConditionalBase`), and
    :meth:`log_prob`, :meth:`dequantized_log_prob`, :meth:`bits_per_dim` and
    :meth:`sample` take the classes ``y`` (:meth:`check_labels`);
    :meth:`class_log_probs` scores every class at once.

    ActNorm layers start from data: :meth:`initialize` sets each one's scale
    and shift so that a batch of real images comes out with zero mean and unit
    variance per channel (Glow's data-dependent initialisation). A model that
    was not initialised yet does it on the first images it is given to score
    (``log_prob``, ``forward_kld``, ``encode``: the first batch of a training
    loop), through the same checks; sampling and decoding never initialise it,
    since a latent is not data. A loaded checkpoint counts as initialised.

    Args:
        config: the hyper-parameters; keyword arguments override its fields.

    Example:
        >>> model = Glow(levels=2, blocks=1, hidden=8)
        >>> model.latent_shapes()
        [(8, 7, 7), (2, 14, 14)]
    """

    def __init__(self, config: GlowConfig | None = None, **overrides) -> None:
        super().__init__()
        cfg = GlowConfig(**{**asdict(config or GlowConfig()), **overrides})
        cfg = GlowConfig(**{**asdict(cfg), "shape": tuple(cfg.shape)})
        c, h, w = cfg.shape
        if cfg.levels < 1 or h % 2**cfg.levels or w % 2**cfg.levels:
            raise ValueError(
                f"image size {h}×{w} must be divisible by 2**levels = {2**cfg.levels}; "
                f"for 28×28 use levels ≤ 2"
            )
        if cfg.split_mode not in ("channel", "channel_inv", "checkerboard"):
            raise ValueError(
                f"split_mode must be 'channel' or 'checkerboard', got {cfg.split_mode!r}"
            )
        if cfg.split_mode == "checkerboard" and (h // 2**cfg.levels) % 2:
            raise ValueError(
                f"a checkerboard split needs an even size at every level, but {h}×{w} images "
                f"reach {h // 2**cfg.levels}×{w // 2**cfg.levels} at level {cfg.levels}; "
                "use split_mode='channel' or fewer levels"
            )
        if cfg.base not in ("channel", "spectral"):
            raise ValueError(f"base must be 'channel' or 'spectral', got {cfg.base!r}")
        if cfg.net not in ("conv", "gated"):
            raise ValueError(f"net must be 'conv' or 'gated', got {cfg.net!r}")
        if cfg.full_res and (h % 2 or w % 2):
            raise ValueError(
                f"full-resolution checkerboard couplings need an even size, got {h}×{w}"
            )
        blocks, hidden = cfg.per_level("blocks"), cfg.per_level("hidden")
        self.config = cfg
        big_l = cfg.levels
        q0, flows, merges = [], [], []
        for i in range(big_l):
            # Level 0 is the coarsest; lists run from the base towards the data.
            ch = c * 2 ** (big_l + 1 - i)
            width, depth = hidden[big_l - 1 - i], blocks[big_l - 1 - i]
            level: list[nn.Module] = []
            for k in range(depth):
                if cfg.net == "gated":
                    level += glow_block(ch, width, cfg.net_layers, invert=k % 2 == 1)
                else:
                    level.append(
                        nf.flows.GlowBlock(
                            ch,
                            width,
                            split_mode=cfg.split_mode,
                            scale=True,
                            scale_map=cfg.scale_map,
                        )
                    )
            level.append(nf.flows.Squeeze())
            if i == big_l - 1:  # the finest level ends, towards the data, at full resolution
                level += [
                    MaskedAffineCoupling(
                        checkerboard(h, w, invert=k % 2 == 1),
                        c,
                        cfg.full_res_hidden,
                        cfg.net_layers,
                    )
                    for k in range(cfg.full_res)
                ]
            flows.append(level)
            if i > 0:
                merges.append(nf.flows.Merge())
                f = 2 ** (big_l - i)
                latent = (c * f, h // f, w // f)
            else:
                f = 2**big_l
                latent = (c * 2 * f, h // f, w // f)
            base = (
                SpectralGlowBase(latent)
                if cfg.base == "spectral"
                else nf.distributions.GlowBase(latent)
            )
            q0.append(ClassConditionalBase(base, cfg.num_classes) if cfg.num_classes else base)
        transform = nf.transforms.Logit(cfg.logit_alpha) if cfg.logit_alpha is not None else None
        self.flow = _MultiscaleFlow(
            q0, flows, merges, transform=transform, class_cond=cfg.num_classes is not None
        )
        self.dequantizer = (
            VariationalDequantizer(
                cfg.shape, cfg.dequantizer, cfg.dequantizer_hidden, cfg.net_layers
            )
            if cfg.dequantizer
            else None
        )
        self._initialized = False
        self.register_load_state_dict_post_hook(self._forget_initialized)

    @property
    def num_classes(self) -> int | None:
        """How many classes a class-conditional Glow knows; None for an unconditional one."""
        return self.config.num_classes

    def check_labels(self, y: object, n: int, name: str = "y") -> Tensor | None:
        """The classes ``y`` of ``n`` images as an ``int64`` tensor on the model's device.

        A class-conditional Glow needs them: one int (the same class for all
        ``n``) or ``n`` integers in ``0..num_classes-1`` (a tensor, array or
        list). An unconditional Glow takes none (``y=None``).

        Raises:
            ValueError: labels given to an unconditional Glow or missing for a
                conditional one, or of the wrong dtype, shape or range.
        """
        if self.num_classes is None:
            if y is not None:
                raise ValueError(
                    f"{name} was given, but this Glow is unconditional (num_classes=None): "
                    "it models p(x), not p(x | y); leave out the classes"
                )
            return None
        k = self.num_classes
        if y is None:
            raise ValueError(
                f"this Glow is class-conditional ({k} classes): give the classes {name}, one int "
                f"or {n} ints in 0..{k - 1}"
            )
        device = next(self.parameters()).device
        if isinstance(y, (int, np.integer)) and not isinstance(y, bool):
            labels = torch.full((n,), int(y), dtype=torch.int64, device=device)
        else:
            labels = torch.as_tensor(y) if not isinstance(y, Tensor) else y
            if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
                raise ValueError(
                    f"{name} must hold integer classes, got dtype "
                    f"{str(labels.dtype).removeprefix('torch.')} (convert with .long())"
                )
            if labels.shape != (n,):
                raise ValueError(
                    f"{name} must be one int or {n} classes of shape ({n},), one per image, "
                    f"got shape {tuple(labels.shape)}"
                )
            labels = labels.to(device=device, dtype=torch.int64)
        if n and (int(labels.min()) < 0 or int(labels.max()) >= k):
            raise ValueError(
                f"{name} must lie in 0..{k - 1} ({k} classes), got values from "
                f"{int(labels.min())} to {int(labels.max())}"
            )
        return labels

    @property
    def num_dims(self) -> int:
        """Dimensions per image, ``C·H·W``."""
        return math.prod(self.config.shape)

    def latent_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the latent of each level, coarsest first."""
        return [tuple(q.shape) for q in self.flow.q0]

    def summary(self) -> str:
        """A table of the levels: what each does to the shape, its blocks and parameters.

        Reads from the data side (the direction of density evaluation), finest
        level first, as a learner follows an image through the model.
        """
        c, h, w = self.config.shape
        cfg = self.config
        lines = [
            f"input x: ({c}, {h}, {w}) in [0, 1)"
            + (f", logit(α={cfg.logit_alpha})" if cfg.logit_alpha else "")
        ]
        shapes = self.latent_shapes()
        blocks, hidden = cfg.per_level("blocks"), cfg.per_level("hidden")
        gated = cfg.net == "gated"  # normflows' own GlowBlock (``"conv"``) needs no detail
        total = 0
        if self.dequantizer is not None:
            total = sum(p.numel() for p in self.dequantizer.parameters())
            lines.insert(
                0,
                f"dequantizer: u = (k + v)/256 for 8-bit images k, the noise v from "
                f"{cfg.dequantizer} checkerboard couplings that see k ({cfg.dequantizer_hidden} "
                f"hidden); {total:,} parameters",
            )
        finest = list(self.flow.flows[-1])
        if cfg.full_res:
            full = finest[len(finest) - cfg.full_res :]
            n_params = full_res_params = sum(p.numel() for f in full for p in f.parameters())
            total += n_params
            lines.append(
                f"full resolution: {cfg.full_res} checkerboard couplings (gated CNN, "
                f"{cfg.full_res_hidden} hidden); {n_params:,} parameters"
            )
        for i in reversed(range(cfg.levels)):
            n_params = sum(p.numel() for p in self.flow.flows[i].parameters())
            n_params += sum(p.numel() for p in self.flow.q0[i].parameters())
            if i == cfg.levels - 1 and cfg.full_res:
                n_params -= full_res_params
            total += n_params
            c, h, w = c * 4, h // 2, w // 2
            level = cfg.levels - i
            lines.append(
                f"level {level}: squeeze -> ({c}, {h}, {w}); "
                f"{blocks[level - 1]} Glow blocks (ActNorm, 1x1 conv, affine coupling"
                + (f" with a gated CNN, {hidden[level - 1]} hidden" if gated else "")
                + f"); {n_params:,} parameters"
            )
            if i > 0:
                c //= 2
                lines.append(
                    f"         split: latent z{i} of shape {shapes[i]} goes to the base, "
                    f"({c}, {h}, {w}) continues"
                )
            else:
                lines.append(f"         latent z0 of shape {shapes[0]} goes to the base")
        if cfg.num_classes:
            n_params = sum(
                q.class_loc.numel() + q.class_log_scale.numel() for q in self.flow.q0
            )  # counted in the levels above
            lines.append(
                f"class-conditional base: a mean and log-scale per class ({cfg.num_classes}) "
                f"for every latent coordinate; {n_params:,} of the parameters"
            )
        lines.append(f"total: {total:,} parameters, {self.num_dims} dimensions in and out")
        return "\n".join(lines)

    def check_input(self, x: Tensor, name: str = "x") -> None:
        """Raise a clear ``ValueError`` unless ``x`` is ``(batch, C, H, W)``, finite, in [0, 1]."""
        check_unit_images(
            name,
            x,
            shape=self.config.shape,
            dtype=next(self.parameters()).dtype,
            uint8_hint="dequantize uint8 images first (course_utils.glow.model.dequantize)",
        )

    def _actnorms(self) -> list[nn.Module]:
        return [m for m in self.modules() if hasattr(m, "data_dep_init_done")]

    @property
    def initialized(self) -> bool:
        """Whether every ActNorm layer has its data-dependent scale and shift."""
        # Remembered once true, so that a GPU step does not wait to read the flags;
        # loading a state dict forgets it (the loaded flags decide).
        if not self._initialized:
            self._initialized = all(float(m.data_dep_init_done) > 0 for m in self._actnorms())
        return self._initialized

    def _forget_initialized(self, *_: object) -> None:
        self._initialized = False

    @torch.no_grad()
    def initialize(self, x: Tensor, force: bool = False) -> Glow:
        """Glow's data-dependent initialisation of every ActNorm layer from real images.

        Each ActNorm's scale and shift are set so that ``x``, passed through
        the layers before it, leaves it with zero mean and unit variance per
        channel. A blank or nearly constant batch would make the scales huge
        (real images then score ~1e23 bits/dim), so it is refused.

        Args:
            x: dequantized images ``(batch, C, H, W)`` in ``[0, 1]``, e.g. a few
                hundred training images.
            force: initialise again a model that already is (trained or loaded),
                which discards what its ActNorm layers learnt.

        Returns:
            The model itself.

        Raises:
            ValueError: ``x`` is not a batch of images or is blank/constant.
            RuntimeError: the model is initialised already and ``force`` is False.
        """
        self.check_input(x)
        if self.initialized and not force:
            raise RuntimeError(
                "the model's ActNorm layers are already initialised (trained or loaded); "
                "initialize(x, force=True) would discard what they learnt"
            )
        spread = float(x.std()) if x.numel() > 1 else 0.0
        if spread < _MIN_INIT_STD:
            raise ValueError(
                f"x is blank or constant (pixel standard deviation {spread:.2g}, "
                f"below {_MIN_INIT_STD}): ActNorm would scale its noise up to unit variance. "
                "Initialise on a batch of real images"
            )
        if force:
            for m in self._actnorms():
                m.data_dep_init_done.fill_(0.0)
        # normflows' ActNorm sets itself on this first pass (the classes do not reach it)
        y = None if self.num_classes is None else torch.zeros(len(x), dtype=torch.int64)
        self.flow.log_prob(x, None if y is None else y.to(x.device))
        for m in self._actnorms():  # one the data pass does not reach keeps its identity start
            m.data_dep_init_done.fill_(1.0)
        self._initialized = True
        return self

    def _ensure_initialized(self, x: Tensor) -> None:
        if not self.initialized:
            self.initialize(x)

    @contextmanager
    def _without_initialising(self) -> Iterator[None]:
        """Run the latent → data direction without letting ActNorm initialise on latents."""
        pending = [m for m in self._actnorms() if not float(m.data_dep_init_done) > 0]
        for m in pending:
            m.data_dep_init_done.fill_(1.0)
        try:
            yield
        finally:
            for m in pending:
                m.data_dep_init_done.fill_(0.0)

    def log_prob(self, x: Tensor, y: object = None) -> Tensor:
        """Exact log-density ``(batch, C, H, W) -> (batch,)`` of dequantized images.

        A class-conditional Glow gives ``log p(x | y)`` of the classes ``y``
        (one int, or one per image; see :meth:`check_labels`).
        """
        self.check_input(x)
        y = self.check_labels(y, len(x))
        self._ensure_initialized(x)
        return self.flow.log_prob(x, y)

    def class_log_probs(self, x: Tensor) -> Tensor:
        """``log p(x | y)`` of dequantized images for every class: ``(batch, num_classes)``.

        The flow is the same for every class, so it runs once; only the bases
        are evaluated once per class. Adding ``log p(y)`` and taking the
        argmax classifies by Bayes' rule.

        Raises:
            ValueError: the Glow is unconditional, or ``x`` is not images in [0, 1].
        """
        if self.num_classes is None:
            raise ValueError("class_log_probs needs a class-conditional Glow (num_classes set)")
        self.check_input(x)
        self._ensure_initialized(x)
        z, log_det = self.flow.inverse_and_log_det(x)
        return log_det[:, None] + sum(
            q.log_prob_every_class(zi) for q, zi in zip(self.flow.q0, z, strict=True)
        )

    def forward_kld(self, x: Tensor, y: object = None) -> Tensor:
        """Training loss: mean NLL in nats of a batch of dequantized images (given ``y``)."""
        return -self.log_prob(x, y).mean()

    def dequantized_log_prob(
        self, images: Tensor, generator: torch.Generator | None = None, y: object = None
    ) -> Tensor:
        """A lower bound on ``log P(k) + D log 256`` of 8-bit images ``k``: ``(batch,)``.

        ``log p(u) − log q(v|k)`` with ``u = (k + v)/256`` and ``v`` drawn from
        the model's dequantizer, or uniformly (``log q = 0``) without one. In
        the units of :meth:`log_prob`, so :func:`course_utils.core.metrics.bits_per_dim`
        turns it into bits/dim; its negative mean is the training loss.

        Args:
            images: ``uint8`` images ``(batch, C, H, W)``.
            generator: seeds the dequantization noise.
            y: the classes, for a class-conditional Glow (the bound on ``log P(k | y)``).
        """
        images = check_uint8_images("images", images, shape=self.config.shape, allow_hw=False)
        y = self.check_labels(y, len(images))
        if self.dequantizer is None:
            return self.log_prob(dequantize(images, generator), y)
        u, log_q = self.dequantizer(images, generator)
        return self.log_prob(u, y) - log_q

    def dequantized_class_log_probs(
        self, images: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """:meth:`dequantized_log_prob` of every class, one dequantization: ``(batch, K)``."""
        images = check_uint8_images("images", images, shape=self.config.shape, allow_hw=False)
        if self.dequantizer is None:
            return self.class_log_probs(dequantize(images, generator))
        u, log_q = self.dequantizer(images, generator)
        return self.class_log_probs(u) - log_q[:, None]

    @torch.no_grad()
    def bits_per_dim(
        self, x: Tensor, batch_size: int = BATCH_CHUNK, seed: int = 1, y: object = None
    ) -> float:
        """Mean bits/dim (convention of :mod:`course_utils.core.metrics`).

        Args:
            x: dequantized images (float, in [0, 1]), scored with :meth:`log_prob`;
                or ``uint8`` images, scored with :meth:`dequantized_log_prob`
                (the model's own dequantizer) and a noise seeded with ``seed``.
            batch_size: images per pass, so a whole test split fits in memory.
            seed: seeds the dequantization noise of ``uint8`` images.
            y: the classes of ``x``, for a class-conditional Glow (bits/dim of ``p(x | y)``).
        """
        y = self.check_labels(y, len(x))
        if isinstance(x, torch.Tensor) and x.dtype == torch.uint8:
            if batch_size < 1:
                raise ValueError(f"batch_size must be positive, got {batch_size}")
            generator = torch.Generator().manual_seed(seed)
            labels = [None] * len(x) if y is None else y.split(batch_size)
            log_p = torch.cat(
                [
                    self.dequantized_log_prob(part, generator, part_y)
                    for part, part_y in zip(x.split(batch_size), labels, strict=False)
                ]
            )
            return bits_per_dim(log_p, self.num_dims)
        return bits_per_dim(log_prob_in_batches(self, x, batch_size, y), self.num_dims)

    def encode(self, x: Tensor) -> list[Tensor]:
        """Data → latents, one tensor per level (coarsest first)."""
        self.check_input(x)
        self._ensure_initialized(x)
        z, _ = self.flow.inverse_and_log_det(x)
        return z

    def decode(self, z: list[Tensor]) -> Tensor:
        """Latents (one per level, coarsest first) → images."""
        with self._without_initialising():
            x, _ = self.flow.forward_and_log_det(z)
        return x

    @torch.no_grad()
    def sample_latents(self, n: int, temperature: float = 1.0, y: object = None) -> list[Tensor]:
        """``n`` draws of every level's latent from the base, at a temperature (given ``y``)."""
        n = check_int("n", n, minimum=1)
        temperature = check_float("temperature", temperature, positive=True)
        y = self.check_labels(y, n)
        self.flow.set_temperature(temperature)
        try:
            return [q(n)[0] if y is None else q(n, y)[0] for q in self.flow.q0]
        finally:
            self.flow.reset_temperature()

    @torch.no_grad()
    def sample(
        self, n: int, temperature: float = 1.0, redraw: bool = True, y: object = None
    ) -> Tensor:
        """``n`` images ``(n, C, H, W)`` clamped to [0, 1], drawn at a temperature.

        A class-conditional Glow draws from ``p(x | y)``: ``y`` is one class
        for all ``n`` (``sample(10, y=3)``) or one class per image.

        The temperature multiplies the base distribution's standard deviation:
        below 1 the samples are smoother and more typical, at 1 they follow the
        model exactly.

        Never returns a non-finite image. With ``net="gated"`` every coupling's
        log-scale is bounded, so a finite latent always decodes to a finite
        image. normflows' own coupling (``net="conv"``) divides by a sigmoid
        scale that can come arbitrarily close to 0 in the tails of the base
        (about one sample in a thousand at T = 1 for a briefly trained model):
        such draws are redrawn, with a warning that says how many.
        ``redraw=False`` returns the draws as they come (unclamped), e.g. to
        count the non-finite ones.
        """
        n = check_int("n", n, minimum=1)
        temperature = check_float("temperature", temperature, positive=True)
        y = self.check_labels(y, n)
        x = self._draw(n, temperature, y)
        if not redraw:
            return x
        bad = ~torch.isfinite(x.flatten(1)).all(dim=1)
        redrawn = int(bad.sum())
        for _ in range(20):
            if not bad.any():
                break
            x[bad] = self._draw(int(bad.sum()), temperature, None if y is None else y[bad])
            bad = ~torch.isfinite(x.flatten(1)).all(dim=1)
        if bad.any():
            raise RuntimeError(
                f"{int(bad.sum())} of {n} samples stayed non-finite after 20 redraws at "
                f"T = {temperature}: this model cannot be sampled there; lower the temperature "
                "or train it longer (normflows' own coupling, net='conv', overflows in the "
                "base's tails; the course recipe's bounded couplings do not)"
            )
        if redrawn:
            warnings.warn(
                f"{redrawn} of {n} samples decoded to non-finite values and were redrawn",
                RuntimeWarning,
                stacklevel=2,
            )
        return x.clamp(0, 1)

    def _draw(self, n: int, temperature: float, y: Tensor | None = None) -> Tensor:
        with self._without_initialising():
            x, _ = self.flow.sample(n, y=y, temperature=temperature)
        return x


@torch.no_grad()
def log_prob_in_batches(
    model: nn.Module, x: Tensor, batch_size: int = BATCH_CHUNK, y: Tensor | None = None
) -> Tensor:
    """``model.log_prob`` of ``x`` ``batch_size`` rows at a time, without gradients: ``(n,)``.

    ``y``: the classes of ``x`` (a tensor of ``len(x)``), for a class-conditional model.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if y is None:
        return torch.cat([model.log_prob(part) for part in x.split(batch_size)])
    parts = zip(x.split(batch_size), y.split(batch_size), strict=True)
    return torch.cat([model.log_prob(part, part_y) for part, part_y in parts])


def glow_checkpoint_state(model: Glow) -> dict:
    """What a checkpoint must hold besides the weights to rebuild ``model``.

    Settings added after checkpoints were first written (``base``,
    ``num_classes``) are recorded only where they differ from their defaults,
    so those checkpoints still resume.
    """
    cfg = asdict(model.config)
    cfg["shape"] = list(cfg["shape"])
    for late in ("base", "num_classes"):
        if cfg[late] == getattr(GlowConfig, late):
            del cfg[late]
    return {"config": cfg}


def glow_from_state(extra: dict) -> Glow:
    """A fresh :class:`Glow` of the configuration a checkpoint recorded.

    Args:
        extra: the ``extra`` metadata of a checkpoint or a shipped model, holding
            the ``config`` that :func:`glow_checkpoint_state` wrote.

    Raises:
        ValueError: there is no configuration, or it names unknown settings.
    """
    cfg = extra.get("config") if isinstance(extra, dict) else None
    if not isinstance(cfg, dict):
        raise ValueError("no Glow configuration recorded (expected extra['config'])")
    try:
        config = GlowConfig(**{**cfg, "shape": tuple(cfg["shape"])})
    except (KeyError, TypeError) as err:
        raise ValueError(
            f"the recorded Glow configuration is not one this course builds: {err}"
        ) from err
    return Glow(config)
