"""The autoregressive flows of lesson 04: MADE, and MAF and IAF on the same MADE.

An affine autoregressive layer relates a latent vector ``z`` and a data vector
``x`` one coordinate at a time, in a chosen order:

    x_i = z_i · exp(s_i) + t_i,     (s_i, t_i) computed from the coordinates before i.

Its Jacobian is triangular in that order, so ``log|det ∂x/∂z| = Σ_i s_i``.
One network, :class:`MADE`, computes every ``(s_i, t_i)`` in a single pass by
masking its weights so that output ``i`` never sees input ``i`` or a later one.
The two flows differ only in *which* vector the MADE reads:

=========  ===================  ===========================  ===========================
layer      MADE reads           density (``inverse``)         sampling (``forward``)
=========  ===================  ===========================  ===========================
MAF        the data ``x``       one pass                      ``dim`` sequential passes
IAF        the latent ``z``     ``dim`` sequential passes     one pass
=========  ===================  ===========================  ===========================

Direction convention, the same as :mod:`course_utils.flows2d.flows` and normflows:
``forward(z)`` maps **latent → data** and returns ``(x, log|det ∂x/∂z|)``;
``inverse(x)`` maps **data → latent** and returns ``(z, log|det ∂z/∂x|)``.
So the layers plug into :class:`course_utils.flows2d.flows.Flow`, whose ``log_prob``
runs the inverses and whose ``sample`` runs the forwards.

An *order* lists the coordinates from the first generated to the last, e.g.
``[2, 0, 1]`` generates ``x_2`` first; a coordinate's *degree* is its position
in the order, counted from 1.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from course_utils.flows2d.flows import Flow, StandardNormal, _check_vectors

__all__ = [
    "input_degrees",
    "hidden_degrees",
    "made_masks",
    "MaskedLinear",
    "MADE",
    "AffineAutoregressive",
    "MAFLayer",
    "IAFLayer",
    "autoregressive_flow",
    "count_made_passes",
    "time_directions",
]

Tensor = torch.Tensor


# ------------------------------------------------------------------ degrees


def input_degrees(dim: int, order: Sequence[int] | Tensor | None = None) -> Tensor:
    """The degree (1..dim) of every input coordinate for a generation order.

    Args:
        dim: the number of coordinates.
        order: the coordinates listed from the first generated to the last, a
            permutation of ``0..dim-1``; None means the natural order.

    Returns:
        A long tensor of shape ``(dim,)``: ``degrees[order[k]] = k + 1``.

    Raises:
        ValueError: ``dim`` is not positive or ``order`` is not a permutation of ``0..dim-1``.

    >>> input_degrees(3).tolist(), input_degrees(3, order=[2, 0, 1]).tolist()
    ([1, 2, 3], [2, 3, 1])
    """
    if dim < 1:
        raise ValueError(f"dim must be positive, got {dim}")
    if order is None:
        return torch.arange(1, dim + 1)
    order = torch.as_tensor(order)
    if order.shape != (dim,) or not torch.equal(order.sort().values, torch.arange(dim)):
        raise ValueError(
            f"order must be a permutation of 0..{dim - 1} of shape ({dim},), "
            f"got {order.tolist()} of shape {tuple(order.shape)}"
        )
    degrees = torch.empty(dim, dtype=torch.long)
    degrees[order] = torch.arange(1, dim + 1)
    return degrees


def hidden_degrees(dim: int, width: int) -> Tensor:
    """Degrees of the units of a hidden layer: ``1, 2, ..., dim-1, 1, 2, ...`` cyclically.

    A hidden unit of degree ``k`` may see inputs of degree ≤ ``k`` and may feed
    outputs of degree > ``k``. Degree ``dim`` would feed no output, so it is
    never used; cycling (instead of drawing at random, as the MADE paper does)
    gives every degree the same number of units and a reproducible mask.

    Args:
        dim: the number of input coordinates.
        width: the number of hidden units.

    Returns:
        A long tensor of shape ``(width,)`` with values in ``1..max(dim-1, 1)``.

    >>> hidden_degrees(4, 7).tolist()
    [1, 2, 3, 1, 2, 3, 1]
    """
    return torch.arange(width) % max(dim - 1, 1) + 1


def made_masks(degrees: Tensor, hidden: Sequence[int]) -> list[Tensor]:
    """The binary weight masks of a MADE, one per linear layer.

    Rules, with ``d(·)`` the degree of a unit:

    * into a hidden unit ``k`` from unit ``j``: connect iff ``d(k) ≥ d(j)``;
    * into output ``i`` from unit ``j``: connect iff ``d(i) > d(j)`` (strict).

    Every path from input ``j`` to output ``i`` climbs through degrees that
    never decrease and then strictly increases, so output ``i`` depends only on
    inputs of smaller degree: the autoregressive property.

    Args:
        degrees: ``(dim,)`` degrees of the inputs (and outputs), from :func:`input_degrees`.
        hidden: widths of the hidden layers (may be empty: one masked linear layer).

    Returns:
        Float masks of shapes ``(hidden[0], dim), (hidden[1], hidden[0]), ..., (dim, hidden[-1])``,
        in the ``(out_features, in_features)`` layout of ``nn.Linear.weight``.

    >>> [tuple(m.shape) for m in made_masks(input_degrees(3), [5, 4])]
    [(5, 3), (4, 5), (3, 4)]
    >>> made_masks(input_degrees(3), [])[0].tolist()  # no hidden layer: strictly lower triangular
    [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]
    """
    degrees = torch.as_tensor(degrees)
    if degrees.ndim != 1:
        raise ValueError(f"degrees must have shape (dim,), got {tuple(degrees.shape)}")
    dim = len(degrees)
    masks, previous = [], degrees
    for width in hidden:
        current = hidden_degrees(dim, width)
        masks.append((current[:, None] >= previous[None, :]).float())
        previous = current
    masks.append((degrees[:, None] > previous[None, :]).float())
    return masks


# --------------------------------------------------------------------- MADE


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed binary mask.

    Args:
        in_features: input size.
        out_features: output size.
        mask: ``(out_features, in_features)`` of zeros and ones; a zero cuts that connection.

    Raises:
        ValueError: the mask has the wrong shape.
    """

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        mask = torch.as_tensor(mask, dtype=torch.float32)
        if mask.shape != (out_features, in_features):
            raise ValueError(
                f"mask must have shape ({out_features}, {in_features}), got {tuple(mask.shape)}"
            )
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, in_features) -> (batch, out_features)`` with the masked weight."""
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked Autoencoder for Distribution Estimation (Germain et al., 2015).

    A plain multilayer perceptron whose weights are masked (:func:`made_masks`)
    so that the outputs for coordinate ``i`` depend only on the inputs that come
    before ``i`` in ``order``. It returns ``n_params`` numbers per coordinate
    (two for an affine flow: a log-scale and a shift), all in one pass.

    Args:
        dim: number of coordinates.
        hidden: widths of the hidden layers; each needs at least ``dim - 1``
            units, otherwise some inputs could reach no output at all.
        n_params: outputs per coordinate.
        order: generation order (see :func:`input_degrees`); None = natural order.

    Raises:
        ValueError: a hidden layer is narrower than ``dim - 1``, or ``order`` is bad.

    >>> made = MADE(3, hidden=[8], n_params=2)
    >>> tuple(made(torch.zeros(5, 3)).shape)
    (5, 2, 3)
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        n_params: int = 2,
        order: Sequence[int] | Tensor | None = None,
    ) -> None:
        super().__init__()
        degrees = input_degrees(dim, order)
        hidden = list(hidden)
        narrow = [w for w in hidden if w < dim - 1]
        if narrow:
            raise ValueError(
                f"every hidden layer needs at least dim - 1 = {dim - 1} units so that each "
                f"coordinate can influence all later ones, got widths {hidden}"
            )
        if n_params < 1:
            raise ValueError(f"n_params must be positive, got {n_params}")
        self.dim, self.n_params = dim, n_params
        self.register_buffer("degrees", degrees)
        masks = made_masks(degrees, hidden)
        sizes = [dim, *hidden]
        layers: list[nn.Module] = []
        for k, width in enumerate(hidden):
            layers += [MaskedLinear(sizes[k], width, masks[k]), nn.LeakyReLU()]
        # One copy of the output mask per parameter set: rows are (param, coordinate).
        layers.append(MaskedLinear(sizes[-1], n_params * dim, masks[-1].repeat(n_params, 1)))
        self.net = nn.Sequential(*layers)

    @property
    def order(self) -> Tensor:
        """The generation order: the coordinates sorted by degree."""
        return torch.argsort(self.degrees)

    def masks(self) -> list[Tensor]:
        """The masks of the linear layers, first to last (the output mask for all parameters)."""
        return [m.mask for m in self.net if isinstance(m, MaskedLinear)]

    def forward(self, x: Tensor) -> Tensor:
        """All conditionals in one pass.

        Args:
            x: ``(batch, dim)``.

        Returns:
            ``(batch, n_params, dim)``; entry ``[:, p, i]`` depends only on the
            coordinates of ``x`` that come before ``i`` in the order.
        """
        _check_vectors(x, self.dim)
        return self.net(x).view(len(x), self.n_params, self.dim)


# ------------------------------------------------------- MAF and IAF layers


class AffineAutoregressive(nn.Module):
    """An affine autoregressive layer; :class:`MAFLayer` and :class:`IAFLayer` choose what it reads.

    ``x = z · exp(s) + t`` with ``(s, t)`` from a :class:`MADE`. The MADE reads
    the data ``x`` (``reads="data"``, MAF) or the latent ``z``
    (``reads="latent"``, IAF). The direction in which the MADE's input is
    known computes in one pass; the other direction must rebuild its input one
    coordinate per pass, ``dim`` passes in all. ``s`` is squashed by ``tanh``
    times a learned scale, and the MADE's last layer starts at zero, so the
    layer starts as the identity (as :class:`course_utils.flows2d.flows.AffineCoupling` does).

    Args:
        dim: number of coordinates.
        hidden: hidden widths of the MADE.
        order: generation order (see :func:`input_degrees`).
        reads: ``"data"`` (MAF) or ``"latent"`` (IAF).
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        order: Sequence[int] | Tensor | None = None,
        reads: str = "data",
    ) -> None:
        super().__init__()
        if reads not in {"data", "latent"}:
            raise ValueError(f"reads must be 'data' (MAF) or 'latent' (IAF), got {reads!r}")
        self.dim, self.reads = dim, reads
        self.made = MADE(dim, hidden, n_params=2, order=order)
        last = self.made.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.s_scale = nn.Parameter(torch.ones(dim))

    def scale_shift(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """``(s, t)``, each ``(batch, dim)``, from one MADE pass over ``u``."""
        raw_s, t = self.made(u).unbind(1)
        return self.s_scale * torch.tanh(raw_s), t

    # The four ways to run the same affine map.
    def _data_in_one_pass(self, z: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.scale_shift(z)
        return z * torch.exp(s) + t, s.sum(1)

    def _latent_in_one_pass(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.scale_shift(x)
        return (x - t) * torch.exp(-s), -s.sum(1)

    def _data_sequentially(self, z: Tensor) -> tuple[Tensor, Tensor]:
        # After pass k the first k coordinates (in the order) are exact, so the
        # conditioner sees correct values for everything before the next one.
        x = torch.zeros_like(z)
        for _ in range(self.dim):
            s, t = self.scale_shift(x)
            x = z * torch.exp(s) + t
        return x, s.sum(1)

    def _latent_sequentially(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = torch.zeros_like(x)
        for _ in range(self.dim):
            s, t = self.scale_shift(z)
            z = (x - t) * torch.exp(-s)
        return z, -s.sum(1)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Latent → data (sampling): one pass for IAF, ``dim`` passes for MAF.

        Args:
            z: ``(batch, dim)``.

        Returns:
            ``x`` of shape ``(batch, dim)`` and ``log|det ∂x/∂z|`` of shape ``(batch,)``.
        """
        _check_vectors(z, self.dim, "z")
        return self._data_in_one_pass(z) if self.reads == "latent" else self._data_sequentially(z)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data → latent (density): one pass for MAF, ``dim`` passes for IAF.

        Args:
            x: ``(batch, dim)``.

        Returns:
            ``z`` of shape ``(batch, dim)`` and ``log|det ∂z/∂x|`` of shape ``(batch,)``.
        """
        _check_vectors(x, self.dim)
        if self.reads == "data":
            return self._latent_in_one_pass(x)
        return self._latent_sequentially(x)

    def passes(self) -> dict[str, int]:
        """MADE passes per call: ``{"density": ..., "sampling": ...}``.

        >>> MAFLayer(5, hidden=[8]).passes(), IAFLayer(5, hidden=[8]).passes()
        ({'density': 1, 'sampling': 5}, {'density': 5, 'sampling': 1})
        """
        one, many = 1, self.dim
        if self.reads == "data":
            return {"density": one, "sampling": many}
        return {"density": many, "sampling": one}


class MAFLayer(AffineAutoregressive):
    """Masked Autoregressive Flow layer (Papamakarios et al., 2017): the MADE reads the data.

    Density (``inverse``) in one pass, sampling (``forward``) in ``dim`` passes.
    Args as :class:`AffineAutoregressive`, without ``reads``.

    >>> layer = MAFLayer(2, hidden=[4])
    >>> z, log_det = layer.inverse(torch.randn(3, 2))
    >>> tuple(z.shape), tuple(log_det.shape)
    ((3, 2), (3,))
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        order: Sequence[int] | Tensor | None = None,
    ) -> None:
        super().__init__(dim, hidden, order, reads="data")


class IAFLayer(AffineAutoregressive):
    """Inverse Autoregressive Flow layer (Kingma et al., 2016): the MADE reads the latent.

    Sampling (``forward``) in one pass, density (``inverse``) in ``dim`` passes.
    Args as :class:`AffineAutoregressive`, without ``reads``.
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (64, 64),
        order: Sequence[int] | Tensor | None = None,
    ) -> None:
        super().__init__(dim, hidden, order, reads="latent")


def autoregressive_flow(
    dim: int, n_layers: int = 8, hidden: Sequence[int] = (64, 64), kind: str = "maf"
) -> Flow:
    """A stack of MAF or IAF layers whose orders alternate natural / reversed.

    One layer can only condition later coordinates on earlier ones; reversing
    the order in every other layer lets each coordinate depend on all others.

    Args:
        dim: data dimension.
        n_layers: number of autoregressive layers.
        hidden: hidden widths of each layer's MADE.
        kind: ``"maf"`` or ``"iaf"``.

    Returns:
        A :class:`course_utils.flows2d.flows.Flow` with a standard normal base.

    >>> flow = autoregressive_flow(3, n_layers=2, hidden=[8], kind="iaf")
    >>> [layer.made.order.tolist() for layer in flow.layers]
    [[0, 1, 2], [2, 1, 0]]
    """
    layer_cls = {"maf": MAFLayer, "iaf": IAFLayer}.get(kind)
    if layer_cls is None:
        raise ValueError(f"kind must be 'maf' or 'iaf', got {kind!r}")
    if n_layers < 1:
        raise ValueError(f"n_layers must be at least 1, got {n_layers}")
    natural = list(range(dim))
    layers = [
        layer_cls(dim, hidden, order=natural if k % 2 == 0 else natural[::-1])
        for k in range(n_layers)
    ]
    return Flow(StandardNormal(dim), layers)


# ------------------------------------------------------------------- timing


def count_made_passes(layer: AffineAutoregressive, direction: str, u: Tensor) -> int:
    """How many times ``layer`` runs its MADE for one call in ``direction``.

    Counted with a forward hook on the MADE, not read from :meth:`AffineAutoregressive.passes`.

    Args:
        layer: a :class:`MAFLayer` or :class:`IAFLayer`.
        direction: ``"density"`` (``inverse``) or ``"sampling"`` (``forward``).
        u: ``(batch, dim)`` input of that call.

    Returns:
        The number of MADE evaluations.
    """
    if direction not in {"density", "sampling"}:
        raise ValueError(f"direction must be 'density' or 'sampling', got {direction!r}")
    calls = []
    handle = layer.made.register_forward_hook(lambda *_: calls.append(1))
    try:
        with torch.no_grad():
            (layer.inverse if direction == "density" else layer.forward)(u)
    finally:
        handle.remove()
    return len(calls)


def time_directions(
    dims: Sequence[int],
    hidden: int = 128,
    batch: int = 512,
    repeats: int = 5,
    seed: int = 0,
    threads: int = 1,
) -> list[dict[str, float | int | str]]:
    """Measure one MAF and one IAF layer's density and sampling time as ``dim`` grows.

    The clock is the CPU time of this process (``time.process_time``), not the
    wall clock: other programs running on the machine slow a long call down
    more than a short one in wall-clock time, which would distort the ratio
    of the two directions. With one thread and an idle machine the two clocks
    agree. Each call is run once to warm up, then ``repeats`` times, and the
    fastest run is kept. Gradients are off: this is the cost of evaluating,
    not of training.

    Args:
        dims: the dimensions to try; each needs ``dim - 1 <= hidden``.
        hidden: width of the MADE's two hidden layers (the same for every ``dim``).
        batch: points per call.
        repeats: timed runs per measurement.
        seed: seeds the layers and the inputs.
        threads: torch CPU threads during the measurement (restored afterwards).

    Returns:
        One row per ``(dim, model)`` with keys ``dim``, ``model`` (``"MAF"`` /
        ``"IAF"``), ``density_s``, ``sampling_s`` (CPU seconds per call of ``batch``
        points) and ``density_passes``, ``sampling_passes`` (MADE evaluations per call).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _time_directions(dims, hidden, batch, repeats, seed)
    finally:
        torch.set_num_threads(previous_threads)


def _time_directions(
    dims: Sequence[int], hidden: int, batch: int, repeats: int, seed: int
) -> list[dict[str, float | int | str]]:
    rows: list[dict[str, float | int | str]] = []
    gen = torch.Generator().manual_seed(seed)
    for dim in dims:
        for name, layer_cls in (("MAF", MAFLayer), ("IAF", IAFLayer)):
            torch.manual_seed(seed)
            layer = layer_cls(dim, hidden=(hidden, hidden)).eval()
            u = torch.randn(batch, dim, generator=gen)
            row: dict[str, float | int | str] = {"dim": dim, "model": name}
            for direction, fn in (("density", layer.inverse), ("sampling", layer.forward)):
                with torch.no_grad():
                    fn(u)  # warm-up
                    best = float("inf")
                    for _ in range(repeats):
                        t0 = time.process_time()
                        fn(u)
                        best = min(best, time.process_time() - t0)
                row[f"{direction}_s"] = best
                row[f"{direction}_passes"] = count_made_passes(layer, direction, u)
            rows.append(row)
    return rows
