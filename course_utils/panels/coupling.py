"""Lesson 02's panel: train a coupling flow on the moons, then look inside it layer by layer.

Plain functions do the work (the lesson and the tests call them):
:func:`train_moons_flow` trains one :func:`course_utils.flows2d.flows.realnvp` with
lesson 02's recipe, shortened to a click's worth of epochs, and
:func:`moons_flow_figure` draws its NLL curves beside the density and the
samples after the first ``k`` layers. :func:`flows_panel` puts controls around
them: architecture settings and a Train button, and a slider over ``k`` that
only redraws.

Which layers are "the first k": a flow lists its layers from the base to the
data, so the first ``k`` of them push the base distribution part of the way:
``k = 0`` is the Gaussian itself, ``k = len(layers)`` the whole model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from course_utils.core.checks import check_int
from course_utils.core.config import pick
from course_utils.core.plots import PALETTE, density_contour, sample_scatter, show_ticks
from course_utils.core.train import History, train
from course_utils.core.widgets import PanelGroup, show_figure
from course_utils.flows2d import flows

__all__ = [
    "PANEL_EPOCHS",
    "HIDDEN_CHOICES",
    "MAX_COUPLINGS",
    "MOONS_WINDOW",
    "MoonsRun",
    "train_moons_flow",
    "first_layers",
    "moons_flow_figure",
    "FlowsPanel",
    "flows_panel",
]

Tensor = torch.Tensor

#: Epochs of one Train click: 10 of the recipe's 30 (400 steps), a few seconds on one CPU thread.
PANEL_EPOCHS = pick(10, 1)
#: The widths the panel offers for the coupling networks.
HIDDEN_CHOICES = (16, 32, 64, 128)
MAX_COUPLINGS = 12
MOONS_WINDOW = ((-1.5, 2.5), (-1.0, 1.5))


@dataclasses.dataclass
class MoonsRun:
    """One trained moons flow and what its training recorded.

    Attributes:
        model: the :class:`course_utils.flows2d.flows.Flow`.
        history: its :class:`course_utils.core.train.History` (``eval``: held-out NLL per epoch).
        n_couplings, hidden, mixing, seed: the settings it was built with.
        label: how the figure names the run, e.g. ``"trained here"``.
    """

    model: flows.Flow
    history: History
    n_couplings: int
    hidden: int
    mixing: str
    seed: int = 0
    label: str = "trained here"

    @property
    def n_layers(self) -> int:
        """Couplings and mixing layers together."""
        return len(self.model.layers)


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_moons_flow(
    train_x: Tensor,
    test_x: Tensor,
    n_couplings: int = 8,
    hidden: int = 64,
    mixing: str = "linear",
    epochs: int = PANEL_EPOCHS,
    seed: int = 0,
    max_seconds: float = 15.0,
    on_epoch_end: Callable[[History], None] | None = None,
) -> MoonsRun:
    """Build ``flows.realnvp(2, n_couplings, hidden, mixing)`` and train it with lesson 02's recipe.

    Adam with a cosine decay over ``epochs`` (:data:`course_utils.flows2d.flows.MOONS_RECIPE`
    for everything else), on one CPU thread; the held-out NLL is measured after
    every epoch. The random state of the caller is left as it was.

    Args:
        train_x: ``(n, 2)`` training points.
        test_x: ``(m, 2)`` held-out points.
        n_couplings: affine couplings, 1 to :data:`MAX_COUPLINGS`.
        hidden: width of each coupling network, at least 1.
        mixing: ``"linear"`` or ``"permutation"``.
        epochs: passes over ``train_x``.
        seed: seeds the initial weights and the batch order.
        max_seconds: stop training after this many seconds (a click stays short
            whatever the machine); ``History.stopped`` then says so.
        on_epoch_end: called with the history after each epoch (a progress bar).

    Returns:
        The :class:`MoonsRun`.
    """
    for name, x in (("train_x", train_x), ("test_x", test_x)):
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != 2:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must have shape (n, 2), got {got}")
    n_couplings = check_int("n_couplings", n_couplings, minimum=1)
    if n_couplings > MAX_COUPLINGS:
        raise ValueError(f"n_couplings must be at most {MAX_COUPLINGS}, got {n_couplings}")
    hidden = check_int("hidden", hidden, minimum=1)
    epochs = check_int("epochs", epochs, minimum=1)
    recipe = flows.MOONS_RECIPE
    with torch.random.fork_rng(devices=[]), _threads(recipe.threads):
        torch.manual_seed(seed)
        model = flows.realnvp(2, n_couplings, hidden, mixing=mixing)
        optimizer, scheduler = recipe.optimizer(model, epochs=epochs)
        history = train(
            model,
            lambda m, x: m.forward_kld(x),
            train_x,
            epochs=epochs,
            batch_size=recipe.batch_size,
            optimizer=optimizer,
            scheduler=scheduler,
            eval_fn=lambda m: m.forward_kld(test_x).item(),
            device="cpu",
            progress=False,
            seed=seed,
            max_seconds=max_seconds,
            on_epoch_end=on_epoch_end,
        )
    return MoonsRun(model.eval(), history, n_couplings, hidden, mixing, seed)


def first_layers(model: flows.Flow, k: int) -> flows.Flow:
    """The flow made of the base and the first ``k`` layers of ``model`` (shared, not copied).

    Args:
        model: a :class:`course_utils.flows2d.flows.Flow`.
        k: how many layers, from 0 (the base alone) to ``len(model.layers)``.
    """
    k = check_int("k", k, minimum=0)
    if k > len(model.layers):
        raise ValueError(f"k must be at most the {len(model.layers)} layers of the model, got {k}")
    return flows.Flow(model.base, list(model.layers)[:k])


def _window(points: Tensor) -> tuple[tuple[float, float], tuple[float, float]]:
    """The moons' window, widened to hold 99 % of ``points`` on each axis."""
    lo = torch.quantile(points, 0.005, dim=0).tolist()
    hi = torch.quantile(points, 0.995, dim=0).tolist()
    out = []
    for axis, (a, b) in enumerate(MOONS_WINDOW):
        pad = 0.1 * (hi[axis] - lo[axis])
        out.append((min(a, lo[axis] - pad), max(b, hi[axis] + pad)))
    return out[0], out[1]


def _count(n: int, noun: str) -> str:
    """``"1 coupling"``, ``"3 couplings"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _describe_layers(model: flows.Flow, k: int) -> str:
    layers = list(model.layers)[:k]
    couplings = sum(isinstance(layer, flows.AffineCoupling) for layer in layers)
    if k == 0:
        return "the base N(0, I), before any layer"
    if k == len(model.layers):
        return f"the whole flow: {_count(k, 'layer')}"
    n, mixing = len(model.layers), k - couplings
    return f"after the first {k} of {n} layers ({_count(couplings, 'coupling')}, {mixing} mixing)"


@torch.no_grad()
def moons_flow_figure(
    run: MoonsRun,
    k: int | None = None,
    test_x: Tensor | None = None,
    floor: float | None = None,
    n_samples: int = 2000,
) -> Figure:
    """The run's NLL per epoch, and the density and samples after its first ``k`` layers.

    Args:
        run: a :class:`MoonsRun`.
        k: layers to apply, 0 to ``run.n_layers`` (default: all of them).
        test_x: held-out points, drawn in grey under the samples of the whole model.
        floor: the data's entropy, drawn as a dotted line on the NLL curves.
        n_samples: samples pushed through the layers.

    Returns:
        The figure: NLL curves, density, samples (all with coordinates).
    """
    with _threads(flows.MOONS_RECIPE.threads):  # small 2D networks: one thread is fastest
        return _moons_flow_figure(run, k, test_x, floor, n_samples)


def _moons_flow_figure(run, k, test_x, floor, n_samples) -> Figure:
    k = run.n_layers if k is None else k
    part = first_layers(run.model, k)
    samples = part.sample(n_samples, generator=torch.Generator().manual_seed(0))
    xlim, ylim = MOONS_WINDOW if k == run.n_layers else _window(samples)
    fig, axes = plt.subplots(
        1, 3, figsize=(14, 4.0), layout="constrained", width_ratios=[1.1, 1, 1]
    )
    ax = axes[0]
    h = run.history
    epochs = np.arange(1, len(h.eval) + 1)
    ax.plot(epochs, h.epoch_loss, "o-", color=PALETTE[0], lw=2, ms=3, label="training")
    ax.plot(epochs, h.eval, "o--", color=PALETTE[1], lw=2, ms=3, label="held-out")
    if floor is not None:
        ax.axhline(floor, color="0.4", ls=":", lw=1.5, label=f"entropy of the data ({floor:.2f})")
    top = max(h.eval[0], h.epoch_loss[-1]) + 0.1
    bottom = min([*h.eval, *h.epoch_loss] + ([floor] if floor is not None else [])) - 0.05
    ax.set_ylim(bottom, top)
    ax.set(xlabel="epoch", ylabel="NLL (nats, lower is better)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(
        f"{run.label}: {_count(run.n_couplings, 'coupling')}, hidden {run.hidden}, "
        f"{run.mixing}, seed {run.seed}\n"
        f"held-out NLL {h.eval[-1]:.3f} nats after {_count(len(h.eval), 'epoch')}",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    density_contour(part.log_prob, xlim, ylim, n=120, ax=axes[1], levels=25)
    axes[1].set_title(f"density: {_describe_layers(run.model, k)}", fontsize=10)
    if k == run.n_layers and test_x is not None:
        sample_scatter(test_x, ax=axes[2], color="0.65", xlim=xlim, ylim=ylim, label="held-out")
    sample_scatter(samples, ax=axes[2], color=PALETTE[0], xlim=xlim, ylim=ylim, label="samples")
    axes[2].set_title(
        f"{n_samples:,} base samples pushed through the same layers".replace(",", " "), fontsize=10
    )
    axes[2].legend(loc="lower left", fontsize=8, markerscale=3, frameon=False)
    # z before any layer, x after all of them, h for what lies between
    name = "z" if k == 0 else "x" if k == run.n_layers else "h"
    for ax in axes[1:]:
        ax.set(xlabel=f"${name}_1$", ylabel=f"${name}_2$")
        show_ticks(ax)
    return fig


class FlowsPanel(PanelGroup):
    """Couplings, hidden width, mixing and seed, then Train; a slider over the first k layers.

    The architecture controls take effect at the next Train click, which trains
    a fresh flow (:func:`train_moons_flow`, a few seconds); the layer slider
    only redraws (:func:`moons_flow_figure`).

    Attributes:
        run: the :class:`MoonsRun` on show.
        controls: ``n_couplings``, ``hidden``, ``mixing`` and ``seed`` widgets.
        layers: the ``k`` slider.
        train_button, progress, status, output: the other widgets.
        draws: how many times the figure was drawn (tests read it).
        last_figure: the latest figure.
    """

    def __init__(
        self,
        train_x: Tensor,
        test_x: Tensor,
        start: MoonsRun | None = None,
        epochs: int = PANEL_EPOCHS,
        floor: float | None = None,
    ) -> None:
        self.train_x, self.test_x = train_x, test_x
        self.epochs, self.floor = epochs, floor
        style = {"description_width": "initial"}
        layout = W.Layout(width="300px")
        first = start or MoonsRun(flows.realnvp(2, 8, 64), History(), 8, 64, "linear", 0)
        self.controls: dict[str, W.ValueWidget] = {
            "n_couplings": W.IntSlider(
                value=first.n_couplings,
                min=1,
                max=MAX_COUPLINGS,
                description="couplings",
                continuous_update=False,
                style=style,
                layout=layout,
            ),
            "hidden": W.Dropdown(
                options=list(HIDDEN_CHOICES),
                value=first.hidden if first.hidden in HIDDEN_CHOICES else 64,
                description="hidden width",
                style=style,
                layout=W.Layout(width="200px"),
            ),
            "mixing": W.ToggleButtons(
                options=[("learned linear", "linear"), ("permutation", "permutation")],
                value=first.mixing,
                description="between couplings",
                style=style,
            ),
            "seed": W.IntSlider(
                value=first.seed,
                min=0,
                max=9,
                description="seed",
                continuous_update=False,
                style=style,
                layout=W.Layout(width="220px"),
            ),
        }
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.progress = W.IntProgress(value=0, min=0, max=epochs, description="epochs")
        self.status = W.HTML("")
        self.layers = W.IntSlider(
            value=first.n_layers,
            min=0,
            max=first.n_layers,
            description="show the first k layers",
            continuous_update=False,
            style=style,
            layout=W.Layout(width="420px"),
        )
        self.output = W.Output()
        self.draws = 0
        self.last_figure: Figure | None = None
        self._quiet = False
        self.run: MoonsRun | None = start
        self.train_button.on_click(lambda _: self.train())
        self.layers.observe(lambda _: None if self._quiet else self.redraw(), names="value")
        settings = W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap"))
        buttons = W.HBox([self.train_button, self.progress, self.status])
        title = (
            f"<b>Train a coupling flow on the moons ({_count(epochs, 'epoch')} a click), "
            "then look at it layer by layer</b>"
        )
        super().__init__([W.HTML(title), settings, buttons, self.layers, self.output])
        if start is None:
            self.train()
        else:
            self.status.value = f"showing {start.label}; press Train for a flow of your settings"
            self.redraw()

    def values(self) -> dict:
        """The architecture settings, keyed by :func:`train_moons_flow`'s arguments."""
        return {name: w.value for name, w in self.controls.items()}

    def redraw(self) -> Figure:
        """Draw the current run after the first ``k`` layers into ``output``."""
        fig = moons_flow_figure(self.run, self.layers.value, self.test_x, self.floor)
        self.draws += 1
        self.last_figure = fig
        show_figure(self.output, fig)
        return fig

    def train(self) -> MoonsRun:
        """What the Train button does: a fresh flow of the chosen settings, trained, then drawn."""
        self.train_button.disabled = True
        self.progress.value = 0
        self.status.value = "training…"
        t0 = time.perf_counter()
        try:
            run = train_moons_flow(
                self.train_x,
                self.test_x,
                **self.values(),
                epochs=self.epochs,
                on_epoch_end=lambda h: setattr(self.progress, "value", len(h.eval)),
            )
        finally:
            self.train_button.disabled = False
        seconds = time.perf_counter() - t0
        self.run = run
        self._quiet = True  # one redraw below, not one per slider change
        self.layers.max = run.n_layers
        self.layers.value = run.n_layers
        self._quiet = False
        stopped = f" ({run.history.stopped})" if run.history.stopped else ""
        self.status.value = (
            f"{run.history.steps} steps in {seconds:.1f} s{stopped}: "
            f"held-out NLL {run.history.eval[-1]:.3f} nats"
        )
        self.redraw()
        return run


def flows_panel(
    train_x: Tensor,
    test_x: Tensor,
    start: MoonsRun | None = None,
    epochs: int = PANEL_EPOCHS,
    floor: float | None = None,
) -> FlowsPanel:
    """Lesson 02's panel (drawn at once: ``start`` if given, else a first training).

    Args:
        train_x, test_x: the moons, ``(n, 2)`` and ``(m, 2)``.
        start: a run to show before the first click (e.g. the lesson's model).
        epochs: epochs per Train click.
        floor: the data's entropy for the NLL plot.
    """
    return FlowsPanel(train_x, test_x, start=start, epochs=epochs, floor=floor)
