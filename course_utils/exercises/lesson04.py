"""Lesson 04's exercises: MADE's masks, and the two sequential directions of MAF and IAF.

The oracles share no code with the answers: the masks are judged by the
autograd Jacobian of a network built on them (it must be strictly triangular
in the order, with every allowed entry in use), and the sequential passes by
the equation they must solve, ``x = z · exp(s) + t`` with ``(s, t)`` read from
the right vector, and by a round trip through the one-pass direction.
"""

from __future__ import annotations

import torch

from course_utils.exercises import ExerciseFailed, exercise, expect, expect_close
from course_utils.flows2d.autoregressive import IAFLayer, MAFLayer

Tensor = torch.Tensor

# ------------------------------------------------------------------ 04.1 masks


def made_masks_reference(dim, hidden, order):
    """MADE's degrees and masks for a generation ``order`` (the lesson's ``my_made_masks``)."""
    in_deg = torch.empty(dim, dtype=torch.long)
    in_deg[torch.as_tensor(list(order))] = torch.arange(1, dim + 1)  # degree = position
    degrees, masks = [in_deg], []
    for width in hidden:
        deg = torch.arange(width) % (dim - 1) + 1  # hidden degrees cycle through 1..dim-1
        masks.append((deg[:, None] >= degrees[-1][None, :]).float())
        degrees.append(deg)
    masks.append((in_deg[:, None] > degrees[-1][None, :]).float())  # strict into the outputs
    return degrees, masks


def _masks_not_strict(dim, hidden, order):
    """Uses ``>=`` for the output mask too, so output i sees its own input x_i."""
    degrees, masks = made_masks_reference(dim, hidden, order)
    masks[-1] = (degrees[0][:, None] >= degrees[-1][None, :]).float()
    return degrees, masks


def _masks_ignore_order(dim, hidden, order):
    """Gives the inputs the natural degrees 1..dim, whatever the order."""
    return made_masks_reference(dim, hidden, range(dim))


def _masks_hidden_from_zero(dim, hidden, order):
    """Lets hidden degrees run 0..dim-2, so the last but one input reaches no output."""
    degrees, masks = made_masks_reference(dim, hidden, order)
    previous = degrees[0]
    new_masks = []
    for width in hidden:
        deg = torch.arange(width) % (dim - 1)
        new_masks.append((deg[:, None] >= previous[None, :]).float())
        previous = deg
    new_masks.append((degrees[0][:, None] > previous[None, :]).float())
    return degrees, new_masks


def _masked_net_jacobian(masks, dim: int) -> Tensor:
    """The autograd Jacobian ``∂out/∂x`` of a tanh MLP with random weights cut by ``masks``."""
    gen = torch.Generator().manual_seed(0)
    weights = [m.double() * torch.randn(m.shape, generator=gen, dtype=torch.float64) for m in masks]
    biases = [torch.randn(m.shape[0], generator=gen, dtype=torch.float64) for m in masks]

    def net(x: Tensor) -> Tensor:
        for k, (w, b) in enumerate(zip(weights, biases, strict=True)):
            x = x @ w.T + b
            if k < len(weights) - 1:
                x = torch.tanh(x)
        return x

    x0 = torch.randn(dim, generator=gen, dtype=torch.float64)
    return torch.autograd.functional.jacobian(net, x0)


@exercise(
    "04.1",
    "MADE's masks for any order",
    reference=made_masks_reference,
    wrong=[_masks_not_strict, _masks_ignore_order, _masks_hidden_from_zero],
    hint=(
        "First the input degrees: the coordinate `order[k]` gets degree `k + 1` "
        "(`in_deg[torch.tensor(order)] = torch.arange(1, dim + 1)`).\n\n"
        "Hidden degrees cycle through 1..dim-1 (`torch.arange(width) % (dim - 1) + 1`). "
        "A mask has shape (out, in) like `nn.Linear.weight`, so compare a column of "
        "receiving degrees with a row of sending ones: `deg_out[:, None] >= deg_in[None, :]`. "
        "Into the outputs the comparison is strict."
    ),
    answer=(
        "Input degrees from the order (`in_deg[order] = 1..dim`); hidden degrees "
        "`arange(width) % (dim - 1) + 1`; hidden masks `(d_k >= d_j)`, output mask "
        "`(d_i > d_j)` with the input degrees as `d_i`, each as a float `(out, in)` matrix. "
        "The strict `>` is what keeps `x_i` out of its own `s_i, t_i`."
    ),
)
def _check_made_masks(fn) -> None:
    cases = [(3, [4], [0, 1, 2]), (5, [8, 8], [3, 0, 4, 1, 2]), (4, [6, 5, 3], [2, 3, 0, 1])]
    for dim, hidden, order in cases:
        where = f"for dim={dim}, hidden={hidden}, order={order}"
        out = fn(dim, list(hidden), list(order))
        expect(
            isinstance(out, tuple | list) and len(out) == 2,
            f"my_made_masks should return (degrees, masks), got {type(out).__name__}",
        )
        degrees, masks = out
        masks = [torch.as_tensor(m) for m in masks]
        shapes = [(w, n) for w, n in zip(hidden, [dim, *hidden[:-1]], strict=True)]
        shapes.append((dim, hidden[-1]))
        expect(
            [tuple(m.shape) for m in masks] == shapes,
            f"{where} the masks should have shapes {shapes} (out, in), like nn.Linear.weight, "
            f"got {[tuple(m.shape) for m in masks]}",
        )
        want_deg = torch.empty(dim, dtype=torch.long)
        want_deg[torch.tensor(order)] = torch.arange(1, dim + 1)
        expect(
            torch.equal(torch.as_tensor(degrees[0]).long(), want_deg),
            f"{where} the input degrees should be {want_deg.tolist()} (position in the order, "
            f"from 1), got {torch.as_tensor(degrees[0]).tolist()}",
        )
        jac = _masked_net_jacobian(masks, dim)  # (dim, dim): d out_i / d x_j
        sorted_jac = jac[order][:, order]  # rows and columns in generation order
        for i in range(dim):
            for j in range(dim):
                out_name, in_name = f"output {order[i] + 1}", f"input x{order[j] + 1}"
                if j >= i and sorted_jac[i, j] != 0:
                    raise ExerciseFailed(
                        f"{where}: {out_name} depends on {in_name}, which does not come before "
                        f"it in the order (autograd: {sorted_jac[i, j].item():.3g}, should be 0)"
                    )
                if j < i and sorted_jac[i, j] == 0:
                    raise ExerciseFailed(
                        f"{where}: {out_name} does not depend on {in_name}, which comes before "
                        "it: the masks cut a connection MADE is allowed to keep"
                    )


# ------------------------------------------------- 04.2 and 04.3 sequential passes


def _scale_shift(made, s_scale, u):
    raw_s, t = made(u).unbind(1)
    return s_scale * torch.tanh(raw_s), t


def maf_sampling_reference(made, s_scale, z):
    """MAF sampling, latent → data: the MADE reads ``x``, so ``dim`` passes from ``x = 0``."""
    x = torch.zeros_like(z)
    for _ in range(z.shape[1]):
        raw_s, t = made(x).unbind(1)
        s = s_scale * torch.tanh(raw_s)
        x = z * torch.exp(s) + t
    return x, s.sum(1)


def _maf_one_pass(made, s_scale, z):
    """Stops after one pass: only the first coordinate of the order is right."""
    s, t = _scale_shift(made, s_scale, torch.zeros_like(z))
    return z * torch.exp(s) + t, s.sum(1)


def _maf_reads_latent(made, s_scale, z):
    """Feeds z to the MADE (that is an IAF, not the MAF the layer was trained as)."""
    s, t = _scale_shift(made, s_scale, z)
    return z * torch.exp(s) + t, s.sum(1)


def _maf_log_det_negated(made, s_scale, z):
    """Returns -sum(s): the log-determinant of the density direction, not of sampling."""
    x, log_det = maf_sampling_reference(made, s_scale, z)
    return x, -log_det


def iaf_density_reference(made, s_scale, x):
    """IAF density, data → latent: the MADE reads ``z``, so ``dim`` passes from ``z = 0``."""
    z = torch.zeros_like(x)
    for _ in range(x.shape[1]):
        raw_s, t = made(z).unbind(1)
        s = s_scale * torch.tanh(raw_s)
        z = (x - t) * torch.exp(-s)
    return z, -s.sum(1)


def _iaf_reads_data(made, s_scale, x):
    """Feeds x to the MADE in one pass (the MAF density formula)."""
    s, t = _scale_shift(made, s_scale, x)
    return (x - t) * torch.exp(-s), -s.sum(1)


def _iaf_one_pass_short(made, s_scale, x):
    """Runs dim - 1 passes: the last coordinate of the order is still off."""
    z = torch.zeros_like(x)
    for _ in range(x.shape[1] - 1):
        s, t = _scale_shift(made, s_scale, z)
        z = (x - t) * torch.exp(-s)
    return z, -s.sum(1)


def _iaf_log_det_positive(made, s_scale, x):
    """Returns +sum(s), the log-determinant of sampling, for the density direction."""
    z, log_det = iaf_density_reference(made, s_scale, x)
    return z, -log_det


def _perturbed_layer(kind: str, dim: int, order: list[int]):

    torch.manual_seed(dim)
    layer = (MAFLayer if kind == "maf" else IAFLayer)(dim, hidden=[16, 16], order=order).double()
    with torch.no_grad():  # a fresh layer is the identity, which any loop gets right
        for p in layer.parameters():
            p.add_(0.4 * torch.randn_like(p))
    return layer


def _check_sequential(fn, kind: str) -> None:
    name = "maf_sampling_passes" if kind == "maf" else "iaf_density_passes"
    for dim, order in ((3, [2, 0, 1]), (5, [3, 0, 4, 1, 2])):
        layer = _perturbed_layer(kind, dim, order)
        u = torch.randn(64, dim, dtype=torch.float64)
        with torch.no_grad():
            out = fn(layer.made, layer.s_scale, u)
        expect(
            isinstance(out, tuple | list) and len(out) == 2,
            f"{name} should return a pair (point, log_det), got {type(out).__name__}",
        )
        got, log_det = out
        where = f"{name} for dim={dim}, order={order}"
        expect(
            isinstance(got, torch.Tensor) and got.shape == u.shape,
            f"{where} should return a point of shape {tuple(u.shape)}, like its input",
        )
        with torch.no_grad():
            # The equation both must solve: x = z exp(s) + t, (s, t) read from x (MAF) or z (IAF).
            if kind == "maf":
                x, z = got, u
                s, t = _scale_shift(layer.made, layer.s_scale, x)
            else:
                x, z = u, got
                s, t = _scale_shift(layer.made, layer.s_scale, z)
        gap = (x - (z * torch.exp(s) + t)).abs().max().item()
        read = "x" if kind == "maf" else "z"
        if gap > 1e-8:
            raise ExerciseFailed(
                f"{where}: x = z·exp(s) + t does not hold with (s, t) read from {read} "
                f"(off by up to {gap:.2g}); are there dim = {dim} passes, each feeding the MADE "
                f"the latest {read}?"
            )
        want = s.sum(1) if kind == "maf" else -s.sum(1)
        sign = "+Σ s (log|det ∂x/∂z|)" if kind == "maf" else "−Σ s (log|det ∂z/∂x|)"
        expect_close(log_det, want, f"the log_det returned by {where} (it should be {sign})")
        with torch.no_grad():  # the one-pass direction of the same layer undoes it
            back, _ = layer.inverse(got) if kind == "maf" else layer.forward(got)
        expect_close(back, u, f"the round trip through the layer's one-pass direction, {where}")


@exercise(
    "04.2",
    "MAF sampling in dim passes",
    reference=maf_sampling_reference,
    wrong=[_maf_one_pass, _maf_reads_latent, _maf_log_det_negated],
    hint=(
        "Start from `x = torch.zeros_like(z)` and repeat `z.shape[1]` times: one MADE pass on "
        "the current `x` gives `(s, t)` (use `scale_shift`), and `x = z * exp(s) + t`.\n\n"
        "After the loop, the `s` of the last pass belongs to the final `x`: the log-determinant "
        "of x = z·exp(s) + t is the sum of `s`."
    ),
    answer=(
        "`x = 0`; `dim` times: `s, t = scale_shift(made, s_scale, x)`, `x = z * exp(s) + t`; "
        "return `x, s.sum(1)`. Pass k makes coordinate k of the order exact, because its "
        "conditioner only reads the coordinates before it, which pass k - 1 made exact."
    ),
)
def _check_maf_sampling(fn) -> None:
    _check_sequential(fn, "maf")


@exercise(
    "04.3",
    "IAF density in dim passes",
    reference=iaf_density_reference,
    wrong=[_iaf_reads_data, _iaf_one_pass_short, _iaf_log_det_positive],
    hint=(
        "An IAF's MADE reads the latent `z`, which is what you are looking for: start from "
        "`z = torch.zeros_like(x)` and improve it one pass at a time, `z.shape[1]` passes.\n\n"
        "Each pass: `(s, t)` from the current `z`, then solve x = z·exp(s) + t for z. The "
        "density direction's log-determinant has the opposite sign of sampling's."
    ),
    answer=(
        "`z = 0`; `dim` times: `s, t = scale_shift(made, s_scale, z)`, "
        "`z = (x - t) * exp(-s)`; return `z, -s.sum(1)`. It is MAF sampling with the roles "
        "of x and z swapped: the direction in which the MADE's input is unknown is the "
        "sequential one."
    ),
)
def _check_iaf_density(fn) -> None:
    _check_sequential(fn, "iaf")


__all__ = ["iaf_density_reference", "made_masks_reference", "maf_sampling_reference"]
