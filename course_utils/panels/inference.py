"""Lesson 05's figures and panels: the planar fold, fitting an energy, and mode seeking.

Plain functions draw the figures and run the fits (the lesson and the tests
call them); :func:`planar_panel`, :func:`energy_panel` and :func:`mode_panel`
put controls around them with :class:`course_utils.core.widgets.Panel`. Training
runs only when a button is clicked and is sized to take well under 20 seconds.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_utils.core.checks import check_float, check_int
from course_utils.core.plots import PALETTE, density_contour, grid_2d, sample_scatter, show_ticks
from course_utils.core.train import History
from course_utils.core.widgets import Panel, panel, slider
from course_utils.flows2d import flows, inference, targets

__all__ = [
    "planar_fold_figure",
    "planar_panel",
    "ENERGY_WINDOW",
    "ENERGY_VIEW",
    "energy",
    "running_mean",
    "EnergyFit",
    "fit_energy",
    "energy_fit_figure",
    "energy_panel",
    "potentials_fit_figure",
    "posterior_figure",
    "hdr_levels",
    "mode_masses",
    "mode_seeking_figure",
    "mode_seeking_panel_figure",
    "mode_panel",
]

Tensor = torch.Tensor


def _keeps_rng(fn: Callable) -> Callable:
    """Run ``fn`` on a copy of torch's random state: a figure never moves the lesson's stream."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.random.fork_rng(devices=[]):
            return fn(*args, **kwargs)

    return wrapper


# ------------------------------------------------------------- the planar fold


@_keeps_rng
def planar_fold_figure(
    w1: float = 1.0, w2: float = 0.0, u1: float = -3.0, u2: float = 0.0, b: float = 0.0
) -> Figure:
    """What one planar layer ``x = z + u tanh(wᵀz + b)`` does with the raw ``u`` and with ``û``.

    Four panels: the map along ``w`` (``wᵀz ↦ wᵀx``, which must increase to be
    invertible), the images of lines of constant ``wᵀz`` under the raw ``u``
    and under the constrained ``û`` (coloured by ``wᵀz``: where colours overlap
    out of order, the map folds), and the density the constrained layer makes
    of N(0, I).

    Args:
        w1, w2: the normal ``w`` of the hyperplane (not both 0).
        u1, u2: the free parameter ``u``.
        b: the offset.

    Returns:
        The figure.
    """
    w1, w2, u1, u2, b = (
        check_float(name, value)
        for name, value in (("w1", w1), ("w2", w2), ("u1", u1), ("u2", u2), ("b", b))
    )
    w = torch.tensor([w1, w2], dtype=torch.float64)
    if float(w @ w) < 1e-6:
        raise ValueError(f"w = ({w1}, {w2}) must not be zero: it is the normal of a hyperplane")
    layer = inference.Planar(2).double()
    with torch.no_grad():
        layer.w.copy_(w)
        layer.u.copy_(torch.tensor([u1, u2], dtype=torch.float64))
        layer.b.fill_(b)
        u_raw, u_hat = layer.u.clone(), layer.u_hat()
    c_raw, c_hat = float(w @ u_raw), float(w @ u_hat)

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.7), layout="constrained")
    ax = axes[0]
    alpha = torch.linspace(-4, 4, 401, dtype=torch.float64)
    raw, hat = ("raw $u$", "u"), (r"$\hat u$", r"\hat u")  # (name, symbol in wᵀ·)
    for c, color, (name, sym) in ((c_raw, PALETTE[1], raw), (c_hat, PALETTE[0], hat)):
        profile = alpha + c * torch.tanh(alpha + b)
        folds = bool((torch.diff(profile) <= 0).any())
        label = f"{name}: $w^\\top {sym}$ = {c:.2f}" + (" (folds)" if folds else "")
        ax.plot(alpha, profile, color=color, lw=2, label=label)
    ax.axline((0, 0), slope=1, color="0.6", ls=":", lw=1, label="identity")
    ax.set(xlabel="$w^\\top z$", ylabel="$w^\\top x$", title="the map along $w$")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8, loc="upper left")

    t = torch.linspace(-3, 3, 61, dtype=torch.float64)
    levels = torch.linspace(-3, 3, 25, dtype=torch.float64)
    w_unit = w / w.norm()
    across = torch.stack([-w_unit[1], w_unit[0]])  # along the hyperplane
    cmap = plt.get_cmap("viridis")
    for ax, u, (name, sym) in ((axes[1], u_raw, raw), (axes[2], u_hat, hat)):
        c = float(w @ u)
        for k, a in enumerate(levels):  # the line of points with w_unit . z = a
            z = a * w_unit + t[:, None] * across
            x = z + torch.tanh(z @ w + b)[:, None] * u
            ax.plot(x[:, 0], x[:, 1], color=cmap(k / (len(levels) - 1)), lw=1.2)
        ax.set(xlim=(-5, 5), ylim=(-5, 5), aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
        ax.set_title(f"{name}: $w^\\top {sym}$ = {c:.2f}", fontsize=10)
    axes[1].text(
        0.02,
        0.02,
        "lines of constant $w^\\top z$\n(colour: $w^\\top z$)",
        transform=axes[1].transAxes,
        fontsize=8,
        color="0.3",
    )
    one = flows.Flow(flows.StandardNormal(2), [layer]).double()
    density_contour(lambda v: one.log_prob(v.double()), (-4, 4), (-4, 4), n=120, ax=axes[3])
    axes[3].set(title=r"density of N(0, I) after the layer with $\hat u$", xlabel="$x_1$")
    axes[3].title.set_fontsize(10)
    show_ticks(axes[3])
    return fig


def planar_panel() -> Panel:
    """Sliders for ``w``, ``u`` and ``b`` around :func:`planar_fold_figure`."""
    return panel(
        planar_fold_figure,
        {
            "w1": slider(1.0, -3.0, 3.0, 0.1, "w₁"),
            "w2": slider(0.0, -3.0, 3.0, 0.1, "w₂"),
            "u1": slider(-3.0, -4.0, 4.0, 0.1, "u₁"),
            "u2": slider(0.0, -4.0, 4.0, 0.1, "u₂"),
            "b": slider(0.0, -2.0, 2.0, 0.1, "b"),
        },
        title="One planar layer x = z + u·tanh(wᵀz + b): when does it fold, and what does û do?",
    )


# ------------------------------------------------------------ fitting an energy

#: The window that holds all the mass of U1-U4, and the one they are drawn on.
ENERGY_WINDOW = {"xlim": (-6.0, 6.0), "ylim": (-7.0, 5.0)}
ENERGY_VIEW = {"xlim": (-4.5, 4.5), "ylim": (-5.0, 4.0)}


def energy(name: str):
    """``log p̃ = −U`` for one of :data:`course_utils.flows2d.targets.POTENTIALS`."""
    if name not in targets.POTENTIALS:
        raise ValueError(f"name must be one of {sorted(targets.POTENTIALS)}, got {name!r}")
    potential = targets.POTENTIALS[name]
    return lambda z: -potential(z)


def running_mean(values, k: int = 50) -> np.ndarray:
    """The mean of each window of ``k`` consecutive values (the values as they are if fewer)."""
    v = np.asarray(values, dtype=float)
    return np.convolve(v, np.ones(k) / k, mode="valid") if len(v) > k else v


@dataclass
class EnergyFit:
    """A planar flow fitted to one energy, with what it took and how close it got.

    Attributes:
        name: the energy, e.g. ``"U1"``.
        flow: the fitted flow.
        history: the training history (``step_loss`` is the loss of every step).
        reference: the target normalised on a grid (its ``log_z`` is exact to ~1e-5).
        estimate: ELBO, importance-sampled ``log Z`` and ESS of the fitted flow.
        anneal_steps: the steps with a flattened target, at the start.
        seconds: wall-clock seconds of the training.
    """

    name: str
    flow: flows.Flow
    history: History
    reference: targets.GridDensity
    estimate: inference.VIEstimate
    anneal_steps: int
    seconds: float

    @property
    def kl(self) -> float:
        """``KL(q ‖ p) = log Z − ELBO`` in nats."""
        return self.reference.log_z - self.estimate.elbo


@_keeps_rng
def fit_energy(
    name: str = "U1",
    n_layers: int = 16,
    anneal: float = 0.25,
    steps: int = 400,
    seed: int = 0,
    n_eval: int = 5000,
    lr: float = 5e-2,
) -> EnergyFit:
    """Fit ``inference.planar_flow(n_layers)`` to an energy by reverse KL (the lesson's recipe).

    Args:
        name: ``"U1"`` to ``"U4"``.
        n_layers: planar layers ``K``.
        anneal: the share of the steps during which ``β`` rises from 0.01 to 1.
        steps: optimisation steps (batches of 256, Adam with a cosine decay).
        seed: seeds the initial flow and the samples.
        n_eval: samples for the ELBO and the ESS.
        lr: Adam's initial learning rate (the lesson's 5e-2 by default).

    Returns:
        An :class:`EnergyFit`.
    """
    log_target = energy(name)
    steps = check_int("steps", steps, minimum=1)
    anneal = check_float("anneal", anneal, minimum=0.0)
    lr = check_float("lr", lr, positive=True)
    if anneal >= 1:
        raise ValueError(f"anneal must be a share of the steps below 1, got {anneal}")
    torch.manual_seed(seed)
    flow = inference.planar_flow(check_int("n_layers", n_layers, minimum=0))
    anneal_steps = int(anneal * steps)
    t0 = time.perf_counter()
    history = inference.fit_reverse_kl(
        flow,
        log_target,
        steps=steps,
        batch_size=256,
        lr=lr,
        anneal_steps=anneal_steps,
        seed=seed,
        progress=False,
    )
    seconds = time.perf_counter() - t0
    reference = targets.grid_density(log_target, **ENERGY_WINDOW, n=300)
    estimate = inference.evaluate_vi(flow, log_target, n_eval, torch.Generator().manual_seed(1))
    return EnergyFit(name, flow, history, reference, estimate, anneal_steps, seconds)


def energy_fit_figure(
    name: str = "U1",
    n_layers: int = 16,
    anneal: float = 0.25,
    steps: int = 400,
    seed: int = 0,
    lr: float = 5e-2,
) -> Figure:
    """Fit (:func:`fit_energy`), then draw target, flow density, samples and the KL curve."""
    fit = fit_energy(name, n_layers, anneal, steps, seed, lr=lr)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), layout="constrained")
    log_target = energy(name)

    def target(z: Tensor) -> Tensor:
        return log_target(z) - fit.reference.log_z

    top = fit.reference.log_prob.exp().max().item()
    levels = np.linspace(0, top, 25)
    density_contour(target, **ENERGY_VIEW, n=120, ax=axes[0], levels=levels)
    density_contour(fit.flow.log_prob, **ENERGY_VIEW, n=120, ax=axes[1], levels=levels)
    samples = fit.flow.sample(2000, generator=torch.Generator().manual_seed(0))
    sample_scatter(samples, ax=axes[2], color=PALETTE[0], s=4, **ENERGY_VIEW)
    axes[0].set_title(f"target $p$ ∝ exp(−{name})", fontsize=10)
    axes[1].set_title(f"flow density $q$, K = {n_layers}", fontsize=10)
    axes[2].set_title("2 000 flow samples", fontsize=10)
    for ax in axes[:3]:
        ax.set(xlabel="$z_1$", ylabel="$z_2$")
        show_ticks(ax)
    ax = axes[3]
    losses = np.array(fit.history.step_loss) + fit.reference.log_z
    ax.plot(np.arange(1, len(losses) + 1), losses, color="0.75", lw=0.8, label="each step")
    k = min(50, max(1, len(losses) // 5))
    smooth = running_mean(losses, k)
    ax.plot(np.arange(k, k + len(smooth)), smooth, color=PALETTE[0], lw=2, label=f"mean of {k}")
    if fit.anneal_steps:
        ax.axvspan(0, fit.anneal_steps, color=PALETTE[4], alpha=0.2, label="annealing (β < 1)")
    after = losses[fit.anneal_steps :]
    ax.set_ylim(min(0.0, float(after.min())), float(np.percentile(after, 98)) + 0.2)
    ax.set(xlabel="step", ylabel="loss + log Z (nats)", title="reverse KL during training")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    fig.suptitle(
        f"{name}: KL(q‖p) = {fit.kl:.3f} nats, ESS {fit.estimate.ess_fraction:.2f}, "
        f"{steps} steps at learning rate {lr:g} in {fit.seconds:.1f} s",
        fontsize=11,
    )
    return fig


def energy_panel(steps: int = 400) -> Panel:
    """Energy, flow length, annealing and steps → :func:`energy_fit_figure`, behind Train.

    ``steps`` is the steps slider's starting value (the first fit is drawn at once).
    """
    style = {"style": {"description_width": "initial"}, "continuous_update": False}
    return panel(
        energy_fit_figure,
        {
            "name": W.Dropdown(
                options=sorted(targets.POTENTIALS), value="U1", description="energy"
            ),
            "n_layers": W.IntSlider(16, 1, 32, description="planar layers K", **style),
            "anneal": slider(0.25, 0.0, 0.5, 0.05, "annealing (share of steps)"),
            "steps": W.IntSlider(steps, min(steps, 100), 1000, 10, description="steps", **style),
            "lr": W.SelectionSlider(
                options=[3e-3, 1e-2, 2e-2, 5e-2, 1e-1],
                value=5e-2,
                description="learning rate",
                **style,
            ),
            "seed": W.IntSlider(0, 0, 9, description="seed", **style),
        },
        button="Train",
        title="Fit a planar flow to an energy by reverse KL (press Train; a few seconds)",
    )


def _normalised(log_target, log_z: float):
    return lambda z: log_target(z) - log_z


def potentials_fit_figure(
    fitted: Mapping[str, flows.Flow],
    log_z: Mapping[str, float],
    kl: Mapping[str, float],
    n: int = 200,
) -> Figure:
    """One column per energy: the target, the fitted flow's density, 2 000 of its samples.

    Args:
        fitted: energy name (``"U1"``...) → the flow fitted to it.
        log_z: energy name → its ``log Z`` (from :func:`course_utils.flows2d.targets.grid_density`).
        kl: energy name → the fit's ``KL(q ‖ p)``, printed in the titles.
        n: grid points per axis.
    """
    fig, axes = plt.subplots(3, len(fitted), figsize=(3.3 * len(fitted), 9.8), layout="constrained")
    axes = np.asarray(axes).reshape(3, -1)
    _, _, pts = grid_2d(ENERGY_VIEW["xlim"], ENERGY_VIEW["ylim"], n)
    for col, (name, flow) in enumerate(fitted.items()):
        log_p = _normalised(energy(name), log_z[name])
        levels = np.linspace(0, log_p(pts).exp().max().item(), 25)  # the target's scale for both
        density_contour(log_p, **ENERGY_VIEW, n=n, ax=axes[0, col], levels=levels)
        density_contour(flow.log_prob, **ENERGY_VIEW, n=n, ax=axes[1, col], levels=levels)
        samples = flow.sample(2000, generator=torch.Generator().manual_seed(0))
        sample_scatter(samples, ax=axes[2, col], color=PALETTE[0], s=4, **ENERGY_VIEW)
        axes[0, col].set_title(f"${name[0]}_{name[1]}$: target $p$")
        axes[1, col].set_title(f"flow density $q$, KL(q‖p) = {kl[name]:.2f}")
        axes[2, col].set_title("2 000 flow samples")
    for ax in axes.flat:
        ax.set(xlabel="$z_1$", ylabel="$z_2$")
        show_ticks(ax)
    return fig


# ------------------------------------------------------------------- a posterior


def posterior_figure(
    log_post_normalised,
    fits: Mapping[str, flows.Flow],
    draws: Tensor,
    x_data: Tensor,
    y_data: Tensor,
    truth: tuple[float, float] = (-1.0, 2.0),
    xlim: tuple[float, float] = (-4.0, 2.0),
    ylim: tuple[float, float] = (-0.5, 7.5),
    n: int = 200,
) -> Figure:
    """The exact posterior with each ``q``'s 50 % and 90 % regions, and posterior predictions.

    Args:
        log_post_normalised: the normalised log-posterior of ``θ = (θ₀, θ₁)``.
        fits: label → fitted flow (the first is drawn white dashed, the second green).
        draws: posterior draws ``(k, 2)`` whose sigmoid curves are drawn on the right.
        x_data, y_data: the data.
        truth: the true ``θ``.
        xlim, ylim: the window.
        n: grid points per axis.
    """
    xx, yy, pts = grid_2d(xlim, ylim, n)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    ax = axes[0]
    density_contour(log_post_normalised, xlim, ylim, n=n, ax=ax, levels=25)
    for (label, flow), (color, ls) in zip(
        fits.items(), [("white", "--"), (PALETTE[2], "-")], strict=False
    ):
        with torch.no_grad():
            lq = flow.log_prob(pts).numpy()
        ax.contour(
            xx.numpy(),
            yy.numpy(),
            np.exp(lq).reshape(n, n),
            levels=hdr_levels(lq),
            colors=color,
            linestyles=ls,
            linewidths=2,
        )
        ax.plot([], [], color=color, ls=ls, lw=2, label=label)
    ax.plot(*truth, "*", color=PALETTE[4], ms=14, mec="black", label="true θ")
    ax.set(xlabel=r"intercept $\theta_0$", ylabel=r"slope $\theta_1$")
    ax.set_title("posterior: exact (filled) and variational (lines)")
    show_ticks(ax, fontsize=9)
    ax.legend(loc="upper left", fontsize=9, facecolor="0.9")
    ax = axes[1]
    xs = torch.linspace(-3, 3, 200)
    for k, th in enumerate(draws.float()):
        label = f"{len(draws)} posterior draws (flow)" if k == 0 else None
        ax.plot(
            xs, torch.sigmoid(th[0] + th[1] * xs), color=PALETTE[2], alpha=0.25, lw=1, label=label
        )
    ax.plot(
        xs, torch.sigmoid(truth[0] + truth[1] * xs), color=PALETTE[4], lw=2.5, label="true curve"
    )
    ax.scatter(x_data, y_data, color="black", s=25, zorder=3, label="data")
    ax.set(xlabel="$x$", ylabel=r"$P(y = 1 \mid x)$", title="predictions from the posterior")
    ax.legend(loc="upper left", fontsize=9, frameon=False)
    ax.grid(alpha=0.3)
    return fig


def hdr_levels(log_prob_values, masses=(0.9, 0.5)) -> list[float]:
    """Density thresholds whose super-level sets hold the given shares of the grid's mass.

    The highest-density regions of a density evaluated on a regular grid; the
    window must hold nearly all of the density's mass.

    >>> [round(float(v), 2) for v in hdr_levels(np.log(np.array([0.5, 0.3, 0.2])), (0.5, 0.8))]
    [0.5, 0.3]
    """
    dens = np.sort(np.exp(np.asarray(log_prob_values)))[::-1]
    cum = np.cumsum(dens) / dens.sum()
    return [float(dens[min(np.searchsorted(cum, m), len(dens) - 1)]) for m in masses]


# ------------------------------------------------------------------ mode seeking


def mode_masses(fits: Mapping[str, flows.Flow], target, n: int = 20_000) -> dict[str, dict]:
    """For each fit: the share of its samples left of the midpoint, KL(q‖p) and KL(p‖q).

    Args:
        fits: label → flow.
        target: the normalised two-mode target (:func:`course_utils.flows2d.targets.two_modes`).
        n: samples for each estimate.

    Returns:
        label → ``{"left": share, "kl_qp": nats, "kl_pq": nats}``.
    """
    means = target.component_distribution.mean
    midpoint = float(means[:, 0].mean())
    fresh = target.sample((n,))
    out = {}
    for label, flow in fits.items():
        s = flow.sample(n, generator=torch.Generator().manual_seed(3))
        est = inference.evaluate_vi(flow, target.log_prob, n, torch.Generator().manual_seed(1))
        with torch.no_grad():
            kl_pq = (target.log_prob(fresh) - flow.log_prob(fresh)).mean().item()
        left = (s[:, 0] < midpoint).float().mean().item()
        out[label] = {"left": left, "kl_qp": -est.elbo, "kl_pq": kl_pq}
    return out


def _two_mode_axes(
    ax: Axes, target, flow: flows.Flow, label: str, masses: dict, color: str
) -> None:
    means = target.component_distribution.mean
    lo, hi = float(means[:, 0].min()) - 2.5, float(means[:, 0].max()) + 2.5
    density_contour(target.log_prob, (lo, hi), (-3.5, 3.5), n=200, ax=ax, levels=20)
    s = flow.sample(2000, generator=torch.Generator().manual_seed(0))
    sample_scatter(
        s, ax=ax, color=color, xlim=(lo, hi), ylim=(-3.5, 3.5), s=4, label="flow samples"
    )
    left = masses["left"]
    ax.set_title(f"RealNVP fitted by {label}\nmass left / right: {left:.2f} / {1 - left:.2f}")
    ax.set(xlabel="$x_1$", ylabel="$x_2$")
    show_ticks(ax)
    ax.legend(loc="upper left", fontsize=9, markerscale=3, facecolor="0.9")


def mode_seeking_figure(
    target, fits: Mapping[str, flows.Flow], masses: Mapping[str, dict], gaussian=None
) -> Figure:
    """Each fit's samples over the two-mode target; optionally a diagonal-Gaussian panel first.

    Args:
        target: the two-mode target.
        fits: label → flow fitted to it (:func:`~course_utils.flows2d.inference.fit_both_ways`).
        masses: :func:`mode_masses` of the fits.
        gaussian: optional ``(correlated_target, {label: LocScale flow})``: the
            2-standard-deviation ellipses of diagonal Gaussians fitted to a correlated Gaussian.
    """
    extra = gaussian is not None
    fig, axes = plt.subplots(
        1, len(fits) + extra, figsize=(4.5 * (len(fits) + extra), 4.3), layout="constrained"
    )
    if extra:
        corr_target, gauss_fits = gaussian
        ax = axes[0]
        density_contour(corr_target.log_prob, (-3, 3), (-3, 3), n=150, ax=ax, levels=20)
        t = torch.linspace(0, 2 * math.pi, 200)
        circle = torch.stack([t.cos(), t.sin()], 1)
        for (label, flow), color, ls in zip(
            gauss_fits.items(), [PALETTE[0], PALETTE[2]], ["-", "--"], strict=False
        ):
            lay = flow.layers[0]
            ell = lay.loc.detach() + 2 * lay.log_scale.exp().detach() * circle
            ax.plot(ell[:, 0], ell[:, 1], color=color, ls=ls, lw=2.5, label=f"{label} (2 std)")
        ax.set(xlabel="$x_1$", ylabel="$x_2$", title="diagonal Gaussian $q$, correlated target")
        show_ticks(ax)
        ax.legend(loc="upper left", fontsize=9, facecolor="0.9")
    for ax, (label, flow), color in zip(axes[extra:], fits.items(), PALETTE[::2], strict=False):
        _two_mode_axes(ax, target, flow, label, masses[label], color)
    return fig


@_keeps_rng
def mode_seeking_panel_figure(separation: float = 6.0, steps: int = 300, seed: int = 0) -> Figure:
    """Fit both ways (``inference.fit_both_ways``) to two modes ``separation`` apart; draw them."""
    target = targets.two_modes(check_float("separation", separation, minimum=0.0))
    t0 = time.perf_counter()
    fits = inference.fit_both_ways(target, steps=steps, seed=seed)
    seconds = time.perf_counter() - t0
    masses = mode_masses(fits, target, n=5000)
    fig = mode_seeking_figure(target, fits, masses)
    rev, fwd = masses["reverse KL"], masses["forward KL"]
    fig.suptitle(
        f"modes {separation:g} apart: KL(q‖p) {rev['kl_qp']:.2f} vs {fwd['kl_qp']:.2f}, "
        f"KL(p‖q) {rev['kl_pq']:.2f} vs {fwd['kl_pq']:.2f} nats (reverse vs forward fit); "
        f"{seconds:.0f} s",
        fontsize=10,
    )
    return fig


def mode_panel(steps: int = 300) -> Panel:
    """The separation of the two modes (and steps, seed) → :func:`mode_seeking_panel_figure`.

    ``steps`` is the steps slider's starting value (the first fits are drawn at once).
    """
    style = {"style": {"description_width": "initial"}, "continuous_update": False}
    return panel(
        mode_seeking_panel_figure,
        {
            "separation": slider(6.0, 0.0, 8.0, 0.5, "distance between the modes"),
            "steps": W.IntSlider(steps, min(steps, 100), 500, 10, description="steps", **style),
            "seed": W.IntSlider(0, 0, 9, description="seed", **style),
        },
        button="Fit",
        title="Reverse KL against forward KL on two modes (press Fit; a few seconds)",
    )
