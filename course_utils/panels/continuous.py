"""Lesson 06's figures and panels: the flow as a movie, and what the solver does to the density.

Plain functions draw the figures (the lesson and the tests call them);
:func:`movie_panel` and :func:`solver_panel` put controls around them with
:class:`course_utils.core.widgets.Panel`. Densities on a grid cost a solve per
point, so each one is computed once and kept (:class:`FlowMovie`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_utils.core.checks import check_float, check_int
from course_utils.core.plots import (
    DENSITY_CMAP,
    PALETTE,
    grid_2d,
    loglog_curves,
    sample_scatter,
    show_ticks,
)
from course_utils.core.widgets import Panel, panel
from course_utils.flows2d.continuous import CNF, SOLVERS

__all__ = [
    "WINDOW",
    "GridDensity",
    "density_grid",
    "FlowMovie",
    "movie_figure",
    "movie_panel",
    "trajectories_figure",
    "steps_comparison_figure",
    "paths_figure",
    "SolverStudy",
    "solver_figure",
    "solver_panel",
    "solver_order_figure",
    "hutchinson_figure",
]

Tensor = torch.Tensor

#: The window of the moons and of the flow's intermediate densities.
WINDOW = {"xlim": (-3.0, 3.5), "ylim": (-3.0, 3.0)}


@dataclass
class GridDensity:
    """A density evaluated on a regular grid, and its total mass there.

    Attributes:
        xx, yy: ``(n, n)`` coordinates.
        density: ``(n, n)`` values of ``exp(log_prob)``.
        mass: ``Σ density · cell area``: 1 for a normalised density whose mass
            lies in the window, up to the grid's resolution.
    """

    xx: np.ndarray
    yy: np.ndarray
    density: np.ndarray
    mass: float


def density_grid(
    cnf: CNF,
    t: float = 1.0,
    steps: int | None = None,
    method: str | None = None,
    xlim: tuple[float, float] = WINDOW["xlim"],
    ylim: tuple[float, float] = WINDOW["ylim"],
    n: int = 80,
) -> GridDensity:
    """``p_t = exp(log_prob(x, t))`` of a CNF's field on an ``n × n`` grid, solved as asked.

    Args:
        cnf: the trained CNF (its field is reused; the solver is chosen here).
        t: the time, in ``[0, t1]``; ``t = 0`` is the base density.
        steps: solver steps per unit ``[0, t1]`` (default: the CNF's own).
        method: ``"rk4"`` or ``"euler"`` (default: the CNF's own).
        xlim, ylim: the window.
        n: grid points per axis.

    Returns:
        A :class:`GridDensity`.
    """
    t = check_float("t", t, minimum=0.0)
    steps = cnf.steps if steps is None else check_int("steps", steps, minimum=1)
    method = cnf.method if method is None else method
    if method not in SOLVERS:
        raise ValueError(f"method must be one of {sorted(SOLVERS)}, got {method!r}")
    xx, yy, pts = grid_2d(xlim, ylim, n)
    model = CNF(cnf.field, steps=steps, method=method, t1=cnf.t1)
    with torch.no_grad():
        if t == 0:
            lp = torch.cat([model.base.log_prob(c) for c in pts.split(8192)])
        else:
            lp = torch.cat([model.log_prob(c, t) for c in pts.split(8192)])
    dens = lp.exp().reshape(n, n).numpy()
    area = (xlim[1] - xlim[0]) / (n - 1) * (ylim[1] - ylim[0]) / (n - 1)
    return GridDensity(xx.numpy(), yy.numpy(), dens, float(dens.sum() * area))


def _draw_density(ax: Axes, g: GridDensity, title: str, vmax: float | None = None) -> None:
    top = float(g.density.max()) if vmax is None else vmax
    ax.contourf(
        g.xx, g.yy, g.density, levels=np.linspace(0, top, 25), cmap=DENSITY_CMAP, extend="max"
    )
    ax.set(aspect="equal", title=title, xlabel="$x_1$", ylabel="$x_2$")
    ax.title.set_fontsize(10)
    show_ticks(ax)


# ------------------------------------------------------------------ the movie


@dataclass
class FlowMovie:
    """A trained CNF's particles at every time, and its densities ``p_t`` as they are asked for.

    Attributes:
        cnf: the trained CNF.
        data: held-out data ``(m, 2)``, drawn in grey for reference.
        z: the particles at ``t = 0``, ``(k, 2)``.
        path: ``(frames + 1, k, 2)`` positions at ``t = j / frames``.
        angle: each particle's starting angle (its colour).
        densities: ``(t, steps) →`` :class:`GridDensity`, filled on demand.
    """

    cnf: CNF
    data: Tensor
    z: Tensor
    path: np.ndarray
    angle: np.ndarray
    densities: dict = field(default_factory=dict)

    @classmethod
    def record(
        cls, cnf: CNF, data: Tensor, n_particles: int = 1000, frames: int = 40, seed: int = 1
    ) -> FlowMovie:
        """Integrate ``n_particles`` base samples with ``frames`` RK4 steps and keep the path."""
        z = cnf.base.sample(n_particles, generator=torch.Generator().manual_seed(seed))
        path = cnf.trajectories(z, steps=check_int("frames", frames, minimum=1)).numpy()
        angle = torch.atan2(z[:, 1], z[:, 0]).numpy()
        return cls(cnf, data, z, path, angle)

    @property
    def frames(self) -> int:
        """Solver steps of the recorded path (it holds ``frames + 1`` positions)."""
        return len(self.path) - 1

    def positions(self, t: float) -> np.ndarray:
        """The particles at the recorded time nearest to ``t``, ``(k, 2)``."""
        t = check_float("t", t, minimum=0.0)
        if t > self.cnf.t1:
            raise ValueError(f"t must be in [0, {self.cnf.t1}], got {t}")
        return self.path[round(t / self.cnf.t1 * self.frames)]

    def density(self, t: float, steps: int = 32, n: int = 80) -> GridDensity:
        """``p_t`` on the window with ``steps`` RK4 steps per unit time (computed once)."""
        key = (round(float(t), 6), int(steps), int(n))
        if key not in self.densities:
            self.densities[key] = density_grid(self.cnf, t, steps, "rk4", n=n)
        return self.densities[key]

    def colours(self) -> np.ndarray:
        """One colour per particle, from its starting angle (the ``twilight`` colour map)."""
        return plt.get_cmap("twilight")((self.angle + math.pi) / (2 * math.pi))


def _draw_particles(ax: Axes, movie: FlowMovie, t: float) -> None:
    sample_scatter(movie.data, ax=ax, color="0.8", s=3, **WINDOW)
    pts = movie.positions(t)
    ax.scatter(pts[:, 0], pts[:, 1], c=movie.colours(), s=3, linewidths=0)
    ax.set(title=f"particles, t = {t:g}", xlabel="$x_1$", ylabel="$x_2$")
    ax.title.set_fontsize(10)
    show_ticks(ax)


def movie_figure(movie: FlowMovie, t: float = 0.5, steps: int = 32, n: int = 80) -> Figure:
    """The particles at time ``t`` (over the data in grey) beside the density ``p_t``."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
    _draw_particles(axes[0], movie, t)
    g = movie.density(t, steps, n)
    _draw_density(axes[1], g, f"density $p_t$, t = {t:g} ({steps} RK4 steps per unit time)")
    return fig


def movie_panel(movie: FlowMovie, steps: Sequence[int] = (8, 32), n: int = 80) -> Panel:
    """A time slider (and the solver steps behind ``p_t``) around :func:`movie_figure`."""
    return panel(
        lambda t, steps: movie_figure(movie, t, steps, n),
        {
            "t": W.FloatSlider(
                value=0.5,
                min=0.0,
                max=movie.cnf.t1,
                step=movie.cnf.t1 / 20,
                description="time t",
                continuous_update=False,
                style={"description_width": "initial"},
                layout=W.Layout(width="320px"),
            ),
            "steps": W.Dropdown(options=list(steps), value=steps[-1], description="RK4 steps"),
        },
        title="The flow as a movie: drag the time (each new p_t takes a few seconds once)",
    )


def trajectories_figure(
    movie: FlowMovie, times: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), steps: int = 32, n=80
) -> Figure:
    """Top row: the particles at ``times``; bottom row: the densities ``p_t`` at those times."""
    fig, axes = plt.subplots(2, len(times), figsize=(2.7 * len(times), 5.6), layout="constrained")
    for col, t in enumerate(times):
        _draw_particles(axes[0, col], movie, t)
        _draw_density(axes[1, col], movie.density(t, steps, n), f"density $p_t$, t = {t:g}")
    return fig


def steps_comparison_figure(
    movie: FlowMovie,
    times: Sequence[float] = (0.25, 0.5, 0.75),
    steps: Sequence[int] = (8, 32),
    n=80,
) -> Figure:
    """``p_t`` at ``times`` (columns) solved with each number of ``steps`` (rows); a difference.

    The rows of a column share one colour scale, so equal pictures mean equal
    densities. The last row is ``|p_t(first steps) − p_t(last steps)|`` on a colour
    scale of its own (shared by the row), its title the largest difference as a
    share of the peak of ``p_t(last steps)``.
    """
    fig, axes = plt.subplots(
        len(steps) + 1,
        len(times),
        figsize=(3.1 * len(times), 3.0 * (len(steps) + 1)),
        layout="constrained",
        squeeze=False,
    )
    gaps = [
        np.abs(movie.density(t, steps[0], n).density - movie.density(t, steps[-1], n).density)
        for t in times
    ]
    gap_top = max(max(float(g.max()) for g in gaps), 1e-12)
    for col, t in enumerate(times):
        top = max(float(movie.density(t, k, n).density.max()) for k in steps)
        for row, k in enumerate(steps):
            _draw_density(axes[row, col], movie.density(t, k, n), f"t = {t:g}, {k} RK4 steps", top)
        ax = axes[-1, col]
        g = movie.density(t, steps[-1], n)
        mesh = ax.pcolormesh(g.xx, g.yy, gaps[col], cmap="Greys", vmin=0, vmax=gap_top)
        ax.set(aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
        ax.set_title(
            f"|difference|: largest {100 * float(gaps[col].max() / g.density.max()):.2f} % of peak",
            fontsize=9,
        )
        show_ticks(ax)
    fig.colorbar(mesh, ax=axes[-1, :].tolist(), shrink=0.8, label="|difference| of densities")
    return fig


def paths_figure(movie: FlowMovie, n_paths: int = 200) -> Figure:
    """The paths of ``n_paths`` particles from ``t = 0`` (small dots) to ``t = 1`` (large ones)."""
    fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    sample_scatter(movie.data, ax=ax, color="0.75", s=4, **WINDOW)
    colors = movie.colours()[:n_paths]
    for i in range(min(n_paths, movie.path.shape[1])):
        ax.plot(movie.path[:, i, 0], movie.path[:, i, 1], color=colors[i], lw=0.7, alpha=0.8)
    start, end = movie.path[0, :n_paths], movie.path[-1, :n_paths]
    ax.scatter(start[:, 0], start[:, 1], c=colors, s=5, label="start, t = 0")
    ax.scatter(
        end[:, 0], end[:, 1], c=colors, s=18, edgecolors="black", linewidths=0.3, label="end, t = 1"
    )
    ax.set(xlabel="$x_1$", ylabel="$x_2$", title="Trajectories from the Gaussian to the moons")
    show_ticks(ax, fontsize=9)
    ax.legend(loc="lower left", frameon=False)
    return fig


# ------------------------------------------------------------------ the solver


@dataclass
class SolverStudy:
    """A trained CNF, the held-out data, and the densities of each solver setting (kept).

    Attributes:
        cnf: the trained CNF.
        data: held-out data ``(m, 2)`` for the NLL.
        n: grid points per axis.
        reference: RK4 with ``reference_steps`` steps, the accurate density.
        results: ``(method, steps) → (GridDensity, held-out NLL)``.
    """

    cnf: CNF
    data: Tensor
    n: int = 100
    reference_steps: int = 32
    results: dict = field(default_factory=dict)

    def run(self, method: str, steps: int) -> tuple[GridDensity, float]:
        """The density on the grid and the held-out NLL with this solver (computed once)."""
        key = (method, int(steps))
        if key not in self.results:
            g = density_grid(self.cnf, 1.0, steps, method, n=self.n)
            model = CNF(self.cnf.field, steps=int(steps), method=method, t1=self.cnf.t1)
            with torch.no_grad():
                nll = model.forward_kld(self.data).item()
            self.results[key] = (g, nll)
        return self.results[key]

    @property
    def reference(self) -> GridDensity:
        return self.run("rk4", self.reference_steps)[0]


def solver_figure(study: SolverStudy, method: str = "euler", steps: int = 8) -> Figure:
    """The density with one solver setting, its difference to accurate RK4, and its mass."""
    g, nll = study.run(method, steps)
    ref = study.reference
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    _draw_density(axes[0], g, f"exp(log_prob) with {method.upper()}, {steps} steps")
    diff = g.density - ref.density
    top = float(np.abs(diff).max()) or 1e-12
    im = axes[1].contourf(g.xx, g.yy, diff, levels=np.linspace(-top, top, 21), cmap="RdBu_r")
    axes[1].set(aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
    axes[1].set_title(f"minus RK4 with {study.reference_steps} steps (red: too dense)", fontsize=10)
    show_ticks(axes[1])
    fig.colorbar(im, ax=axes[1], shrink=0.8, format="%.2f")
    fig.suptitle(
        f"{method.upper()}, {steps} steps: total mass {g.mass:.3f} (error {g.mass - 1:+.3f}), "
        f"held-out NLL {nll:.3f} nats",
        fontsize=11,
    )
    return fig


def solver_panel(study: SolverStudy, steps: Sequence[int] = (1, 2, 4, 8, 16, 32)) -> Panel:
    """Solver and step count → :func:`solver_figure` (each new setting is solved once)."""
    return panel(
        lambda method, steps: solver_figure(study, method, steps),
        {
            "method": W.Dropdown(options=sorted(SOLVERS), value="euler", description="solver"),
            "steps": W.SelectionSlider(
                options=list(steps),
                value=8 if 8 in steps else steps[0],
                description="steps",
                continuous_update=False,
            ),
        },
        title="What the solver does to the density: its mass should be 1",
    )


# ------------------------------------------------------------ lesson figures


def solver_order_figure(errors: dict, n_steps: Sequence[int], evals_per_step: dict) -> Figure:
    """Error against evaluations of ``f`` for each solver, on log–log axes."""
    curves = {}
    for name, errs in errors.items():
        order = "h" if name == "Euler" else "h$^4$"
        evals = [k * evals_per_step[name.lower()] for k in n_steps]
        curves[f"{name}: error ∝ {order}"] = (evals, errs)
    return loglog_curves(
        curves,
        xlabel="evaluations of f over t ∈ [0, 1]",
        ylabel="error at t = 1 (distance to $e^{A} z_0$)",
        title="Solving dz/dt = Az: error against cost",
    )


def hutchinson_figure(single: dict, theory: dict, exact: Tensor, dim: int) -> Figure:
    """Left: one point's single-probe estimates; right: the RMS error of ``k``-probe averages.

    Args:
        single: probe kind → ``(n_probes, n_points)`` single-probe estimates.
        theory: probe kind → ``(n_points,)`` closed-form variances of one probe.
        exact: ``(n_points,)`` exact traces.
        dim: the dimension (for the title).
    """
    n_probes, n_points = next(iter(single.values())).shape
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if n_probes // k >= 16]
    lo = min(e[:, 0].min().item() for e in single.values())
    hi = max(e[:, 0].max().item() for e in single.values())
    bins = np.linspace(lo, hi, 61)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    curves, styles, colors = {}, {}, {}
    for c, (kind, est) in enumerate(single.items()):
        axes[0].hist(
            est[:, 0], bins=bins, histtype="step", lw=2, color=PALETTE[c], label=f"{kind} probes"
        )
        means = [est[: (n_probes // k) * k].reshape(-1, k, n_points).mean(1) for k in ks]
        rms = [(m - exact).pow(2).mean().sqrt().item() for m in means]
        curves[f"{kind}: measured"] = (ks, rms)
        curves[f"{kind}: closed form"] = (
            ks,
            [math.sqrt(theory[kind].mean().item() / k) for k in ks],
        )
        styles[f"{kind}: closed form"] = "--"
        colors[f"{kind}: measured"] = colors[f"{kind}: closed form"] = PALETTE[c]
    axes[0].axvline(exact[0].item(), color="black", lw=2, label="exact trace")
    axes[0].set(xlabel="one-probe estimate εᵀJε", ylabel="count")
    axes[0].set_title(f"One point, {n_probes} probes each ({dim} dimensions)")
    axes[0].legend(frameon=False, fontsize=9)
    loglog_curves(
        curves,
        ax=axes[1],
        styles=styles,
        colors=colors,
        xticks=ks,
        xlabel="probes averaged, k (= backward passes)",
        ylabel="RMS error of the estimate",
        title="Averaging k probes: error ∝ 1/√k",
    )
    return fig
