"""Ready-made models on top of normflows: the multi-scale Glow of lesson 07.

Data convention (see :mod:`course_utils.metrics`): an 8-bit image ``k`` is
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

from course_utils.checks import check_float, check_int
from course_utils.metrics import bits_per_dim

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
        ValueError: ``images`` is not ``uint8`` or has another number of axes.

    >>> u = dequantize(torch.full((2, 1, 2, 2), 255, dtype=torch.uint8))
    >>> bool((u >= 255 / 256).all() and (u < 1).all())
    True
    """
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (0..255), got {images.dtype} (numpy)")
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a uint8 tensor (0..255), got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ValueError(
            f"images must be uint8 (0..255), got {str(images.dtype).removeprefix('torch.')}"
        )
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ValueError(
            f"images must have shape (batch, C, H, W) or (batch, H, W), got {tuple(images.shape)}"
        )
    noise = torch.rand(images.shape, generator=generator).to(images.device)
    return (images.float() + noise) / 256.0


@dataclass(frozen=True)
class GlowConfig:
    """Hyper-parameters of :class:`Glow`; stored in checkpoints to rebuild the model.

    Attributes:
        shape: ``(C, H, W)``; H and W divisible by ``2**levels``.
        levels: number of scales L (squeeze + K blocks + split per level).
        blocks: Glow blocks K per level (ActNorm, 1×1 conv, affine coupling).
        hidden: channels of the coupling networks' hidden layers.
        split_mode: ``"channel"`` or ``"checkerboard"`` split inside couplings.
        scale_map: ``"sigmoid"`` (Glow) or ``"exp"`` (RealNVP) coupling scale.
        logit_alpha: if set, the flow starts with ``logit(α + (1 − 2α) u)``;
            None models ``u`` directly.
    """

    shape: tuple[int, int, int] = (1, 28, 28)
    levels: int = 2
    blocks: int = 8
    hidden: int = 64
    split_mode: str = "channel"
    scale_map: str = "sigmoid"
    logit_alpha: float | None = None


#: The smallest pixel standard deviation :meth:`Glow.initialize` accepts: real
#: digits have about 0.3, a blank batch after dequantization about 0.001.
_MIN_INIT_STD = 0.01


class Glow(nn.Module):
    """A multi-scale Glow (normflows ``MultiscaleFlow``), unconditional.

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
        self.config = cfg
        big_l = cfg.levels
        q0, flows, merges = [], [], []
        for i in range(big_l):
            # Level 0 is the coarsest; lists run from the base towards the data.
            ch = c * 2 ** (big_l + 1 - i)
            level = [
                nf.flows.GlowBlock(
                    ch, cfg.hidden, split_mode=cfg.split_mode, scale=True, scale_map=cfg.scale_map
                )
                for _ in range(cfg.blocks)
            ]
            level.append(nf.flows.Squeeze())
            flows.append(level)
            if i > 0:
                merges.append(nf.flows.Merge())
                f = 2 ** (big_l - i)
                latent = (c * f, h // f, w // f)
            else:
                f = 2**big_l
                latent = (c * 2 * f, h // f, w // f)
            q0.append(nf.distributions.GlowBase(latent))
        transform = nf.transforms.Logit(cfg.logit_alpha) if cfg.logit_alpha is not None else None
        self.flow = nf.MultiscaleFlow(q0, flows, merges, transform=transform, class_cond=False)
        self._initialized = False
        self.register_load_state_dict_post_hook(self._forget_initialized)

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
        total = 0
        for i in reversed(range(cfg.levels)):
            n_params = sum(p.numel() for p in self.flow.flows[i].parameters())
            n_params += sum(p.numel() for p in self.flow.q0[i].parameters())
            total += n_params
            c, h, w = c * 4, h // 2, w // 2
            lines.append(
                f"level {cfg.levels - i}: squeeze -> ({c}, {h}, {w}); "
                f"{cfg.blocks} Glow blocks (ActNorm, 1x1 conv, affine coupling); "
                f"{n_params:,} parameters"
            )
            if i > 0:
                c //= 2
                lines.append(
                    f"         split: latent z{i} of shape {shapes[i]} goes to the base, "
                    f"({c}, {h}, {w}) continues"
                )
            else:
                lines.append(f"         latent z0 of shape {shapes[0]} goes to the base")
        lines.append(f"total: {total:,} parameters, {self.num_dims} dimensions in and out")
        return "\n".join(lines)

    def check_input(self, x: Tensor, name: str = "x") -> None:
        """Raise a clear ``ValueError`` unless ``x`` is ``(batch, C, H, W)``, finite, in [0, 1]."""
        want = self.config.shape
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != want:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{name} must have shape (batch, {', '.join(map(str, want))}), got {got}"
            )
        if not x.is_floating_point():
            raise ValueError(
                f"{name} must be a float tensor in [0, 1]; dequantize uint8 images first"
            )
        if len(x) == 0:
            raise ValueError(f"{name} is an empty batch: give at least one image")
        dtype = next(self.parameters()).dtype
        if x.dtype != dtype:
            raise ValueError(
                f"{name} is {str(x.dtype).removeprefix('torch.')} but the model is "
                f"{str(dtype).removeprefix('torch.')}; convert with x.to({dtype})"
            )
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf values")
        if x.min() < 0 or x.max() > 1:
            raise ValueError(
                f"{name} must lie in [0, 1] (dequantized pixels), got values in "
                f"[{x.min().item():.3g}, {x.max().item():.3g}]"
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
        self.flow.log_prob(x, None)  # normflows' ActNorm sets itself on this first pass
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

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density ``(batch, C, H, W) -> (batch,)`` of dequantized images."""
        self.check_input(x)
        self._ensure_initialized(x)
        return self.flow.log_prob(x, None)

    def forward_kld(self, x: Tensor) -> Tensor:
        """Training loss: mean NLL in nats of a batch of dequantized images."""
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def bits_per_dim(self, x: Tensor, batch_size: int = 500) -> float:
        """Mean bits/dim of dequantized images (convention of :mod:`course_utils.metrics`).

        Evaluated without gradients, ``batch_size`` images at a time, so a whole
        held-out split fits in memory.
        """
        return bits_per_dim(log_prob_in_batches(self, x, batch_size), self.num_dims)

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
    def sample_latents(self, n: int, temperature: float = 1.0) -> list[Tensor]:
        """``n`` draws of every level's latent from the base, at a temperature."""
        n = check_int("n", n, minimum=1)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.flow.set_temperature(temperature)
        try:
            return [q(n)[0] for q in self.flow.q0]
        finally:
            self.flow.reset_temperature()

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` images ``(n, C, H, W)`` clamped to [0, 1], drawn at a temperature.

        The temperature multiplies the base distribution's standard deviation:
        below 1 the samples are smoother and more typical, at 1 they follow the
        model exactly.
        """
        n = check_int("n", n, minimum=1)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        with self._without_initialising():
            x, _ = self.flow.sample(n, temperature=temperature)
        return x.clamp(0, 1)


#: normflows' own Glow example scaled to 28×28: L=2, K=16, 128 hidden channels,
#: Adamax with lr 1e-3, data modelled directly in [0, 1) (no logit).
REFERENCE_RECIPE: dict = {
    "model": {"levels": 2, "blocks": 16, "hidden": 128, "logit_alpha": None},
    "optimizer": "adamax",
    "lr": 1e-3,
    "weight_decay": 1e-5,
    "warmup_steps": 0,
    "batch_size": 128,
}

#: The course's CPU recipe: a small, logit-preprocessed Glow with Adam after a
#: learning-rate warm-up, chosen by ``benchmarks/glow_ablation.py`` for the
#: lowest held-out bits/dim per second of CPU time (lesson 07, section 10).
COURSE_RECIPE: dict = {
    "model": {"levels": 2, "blocks": 4, "hidden": 64, "logit_alpha": 0.05},
    "optimizer": "adam",
    "lr": 2e-3,
    "weight_decay": 0.0,
    "warmup_steps": 100,
    "batch_size": 64,
}

#: A larger model for a GPU (``--device cuda``), aiming at about 1.05 bits/dim
#: on full MNIST after long training. Not yet measured.
FULL_RECIPE: dict = {
    "model": {"levels": 2, "blocks": 32, "hidden": 256, "logit_alpha": 0.05},
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 0.0,
    "warmup_steps": 500,
    "batch_size": 128,
}

RECIPES = {"course": COURSE_RECIPE, "reference": REFERENCE_RECIPE, "full": FULL_RECIPE}


@torch.no_grad()
def log_prob_in_batches(model: nn.Module, x: Tensor, batch_size: int = 500) -> Tensor:
    """``model.log_prob`` of ``x`` ``batch_size`` rows at a time, without gradients: ``(n,)``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return torch.cat([model.log_prob(part) for part in x.split(batch_size)])


def make_optimizer(
    model: nn.Module, recipe: dict
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The optimizer and the linear warm-up schedule a recipe asks for.

    Args:
        model: the model whose parameters to optimise.
        recipe: ``optimizer`` (``"adam"`` or ``"adamax"``), ``lr`` (> 0),
            ``weight_decay`` (>= 0) and ``warmup_steps`` (>= 0), as in
            :data:`COURSE_RECIPE`.

    Returns:
        ``(optimizer, scheduler)``; the scheduler is stepped after every step.

    Raises:
        ValueError: a setting is missing, unknown or out of range.
    """
    kinds = {"adam": torch.optim.Adam, "adamax": torch.optim.Adamax}
    missing = [k for k in ("optimizer", "lr", "weight_decay", "warmup_steps") if k not in recipe]
    if missing:
        raise ValueError(f"recipe lacks {', '.join(map(repr, missing))} (see COURSE_RECIPE)")
    if recipe["optimizer"] not in kinds:
        raise ValueError(
            f"unknown optimizer {recipe['optimizer']!r}; choose one of {sorted(kinds)}"
        )
    lr = check_float("lr", recipe["lr"], positive=True)
    weight_decay = check_float("weight_decay", recipe["weight_decay"], minimum=0)
    warm = max(1, check_int("warmup_steps", recipe["warmup_steps"], minimum=0))
    opt = kinds[recipe["optimizer"]](model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warm))
    return opt, sched


def glow_checkpoint_state(model: Glow) -> dict:
    """What a checkpoint must hold besides the weights to rebuild ``model``."""
    cfg = asdict(model.config)
    cfg["shape"] = list(cfg["shape"])
    return {"config": cfg}


def load_glow(path, map_location: str | torch.device = "cpu") -> tuple[Glow, dict]:
    """Rebuild a :class:`Glow` from a checkpoint written by the training loop.

    ActNorm's data-dependent initialisation is stored in its buffers, so a
    loaded model counts as initialised (:attr:`Glow.initialized`) and gives the
    same log-probabilities as the saved one.

    Args:
        path: the checkpoint file.
        map_location: device to load onto.

    Returns:
        ``(model, checkpoint)``, the model in eval mode and the whole checkpoint
        dict (with its ``history`` and ``extra`` metadata).

    Raises:
        ValueError: the file is not a Glow checkpoint of this course.
        course_utils.train.CheckpointMismatchError: its weights do not fit its
            configuration (the message says which parameters differ).
    """
    from course_utils.train import check_checkpoint, load_checkpoint

    state = load_checkpoint(path, map_location=map_location)
    cfg = state.get("extra", {}).get("config")
    if cfg is None:
        raise ValueError(f"{path} holds no Glow configuration; was it written by train_glow?")
    cfg = {**cfg, "shape": tuple(cfg["shape"])}
    model = Glow(GlowConfig(**cfg))
    check_checkpoint(path, state, model=model)
    model.load_state_dict(state["model"])
    return model.to(map_location).eval(), state
