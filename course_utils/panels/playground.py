"""Lesson 09's loss playground: fine-tune a Glow with the composite loss, one click at a time.

The playground starts from the shipped ``glow-coloured-mnist``
(:func:`starting_model`), a Glow that already draws coloured digits, so every
change a learner makes to the loss weights shows on digits. Each **Train**
click continues training the same model with the current settings
(:func:`playground_train`, a plain function the lesson and the tests call
too), then measures it on held-out digits and adds a row to the history; the
temperature slider only re-draws the samples (:func:`playground_figure`).
The widgets around these functions are :class:`Playground`, built with the
course's panel machinery (:mod:`course_utils.core.widgets`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from course_utils import pretrained
from course_utils.composite.finetune import TermHistory, evaluate, fit
from course_utils.composite.losses import CONFIGURATIONS, LossConfig, sample_with_grad
from course_utils.core.config import seed_everything
from course_utils.core.metrics import bits_per_dim_each
from course_utils.core.plots import PALETTE, image_grid, log_ticks, loss_curves, smoothed
from course_utils.core.widgets import PanelGroup, show_figure, slider
from course_utils.glow.model import Glow, dequantize
from course_utils.glow.recipes import FINETUNE, PLAYGROUND_MODEL

__all__ = [
    "PRETRAINED_NAME",
    "DEFAULT_STEPS",
    "DEFAULTS",
    "starting_model",
    "PlaygroundState",
    "playground_train",
    "playground_figure",
    "history_html",
    "Playground",
    "playground_panel",
    "term_curves_figure",
]

#: The shipped model the playground and the lesson's four configurations start from.
PRETRAINED_NAME = "glow-coloured-mnist"

#: Steps of one Train click with the default settings (benchmarks/playground.py times it:
#: the click stays within 10 s on a 2-core CPU, where a step of all three terms on the
#: 3-channel course Glow takes about 0.8 s on two threads); the slider goes up to 200.
DEFAULT_STEPS = 5

#: Steps averaged by the thick trend line of the playground's curves.
SMOOTHING = 10
#: The panel's starting settings: configuration (d) of the lesson.
DEFAULTS: dict[str, Any] = {
    "alpha": CONFIGURATIONS["d"].alpha,
    "beta": CONFIGURATIONS["d"].beta,
    "temperature": CONFIGURATIONS["d"].temperature,
    "sigma": CONFIGURATIONS["d"].sigma,
    "steps": DEFAULT_STEPS,
    "scale_noise": True,
}


def starting_model(
    from_scratch: bool = False, train_images: torch.Tensor | None = None, seed: int = 0
) -> Glow:
    """The Glow lesson 09 fine-tunes: the shipped one, or a fresh one of the same recipe.

    Args:
        from_scratch: False loads ``glow-coloured-mnist`` (sha256-verified,
            :func:`course_utils.pretrained.load`); True builds an untrained
            :data:`~course_utils.glow.recipes.PLAYGROUND_MODEL` whose ActNorm layers
            are initialised on ``train_images``.
        train_images: ``uint8`` coloured digits ``(N, 3, 28, 28)``, needed
            from scratch (the first 512 initialise the model).
        seed: seeds the fresh model's weights and its initialisation.

    Returns:
        The model, in eval mode.
    """
    if not from_scratch:
        return pretrained.load(PRETRAINED_NAME)
    if train_images is None:
        raise ValueError("train_images must be given to start from scratch (they initialise it)")
    seed_everything(seed)
    model = Glow(PLAYGROUND_MODEL)
    with torch.no_grad():
        model.initialize(dequantize(train_images[:512], torch.Generator().manual_seed(seed)))
    return model.eval()


class PlaygroundState:
    """Everything the loss playground trains and remembers between clicks.

    Attributes:
        model: the :class:`course_utils.glow.model.Glow` being trained (continued by each run).
        optimizer, scheduler: kept between runs, so a run continues the last one
            (:data:`course_utils.glow.recipes.FINETUNE`).
        train_images: ``uint8`` training images ``(N, 3, 28, 28)``.
        test: the first ``n_test`` ``uint8`` held-out images, measured after every run.
        classifier: lesson 07's digit classifier, which counts the recognisable
            samples of every run (None: not counted).
        terms: every step's loss terms, all runs together
            (:class:`course_utils.composite.finetune.TermHistory`).
        runs: one dict per run: its settings, held-out measures and
            ``total_steps``, the step count at its end.
        seed: seeds the batches and, for every figure, the noise of the sample
            grid, so that a new temperature rescales the same noise and only the
            temperature changes.
    """

    def __init__(
        self,
        model: Glow,
        train_images: torch.Tensor,
        test_images: torch.Tensor,
        n_test: int = 200,
        seed: int = 0,
        classifier: torch.nn.Module | None = None,
    ) -> None:
        for name, images in (("train_images", train_images), ("test_images", test_images)):
            if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
                raise ValueError(f"{name} must be a uint8 tensor (N, C, H, W)")
            if images.ndim != 4 or tuple(images.shape[1:]) != model.config.shape:
                want = ", ".join(map(str, model.config.shape))
                raise ValueError(f"{name} must have shape (N, {want}), got {tuple(images.shape)}")
        if n_test < 1:
            raise ValueError(f"n_test must be a positive number of images, got {n_test}")
        if not model.initialized:
            # ActNorm initialises itself on the first batch it sees: make that data.
            model.initialize(dequantize(train_images[:512], torch.Generator().manual_seed(seed)))
        self.model = model.eval()
        self.optimizer, self.scheduler = FINETUNE.make_optimizer(model)
        self.train_images = train_images
        self.test = test_images[:n_test]
        self.classifier = classifier
        self.terms = TermHistory.empty()
        self.runs: list[dict] = []
        self.seed = seed
        self._initial = copy.deepcopy(
            {
                "model": model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
            }
        )

    def reset(self) -> None:
        """Back to the starting model and optimizer; the history is cleared."""
        self.model.load_state_dict(self._initial["model"])
        self.optimizer.load_state_dict(self._initial["optimizer"])
        self.scheduler.load_state_dict(self._initial["scheduler"])
        self.model.eval()
        self.terms = TermHistory.empty()
        self.runs = []


def playground_train(
    state: PlaygroundState,
    alpha: float = DEFAULTS["alpha"],
    beta: float = DEFAULTS["beta"],
    temperature: float = DEFAULTS["temperature"],
    sigma: float = DEFAULTS["sigma"],
    steps: int = DEFAULT_STEPS,
    scale_noise: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """One run of the playground: continue training with these settings, then measure.

    A plain function: the panel's Train button calls it, and so do the lesson
    and the tests.

    Args:
        state: the :class:`PlaygroundState` to continue.
        alpha, beta, temperature, sigma, scale_noise: the loss settings
            (:class:`course_utils.composite.losses.LossConfig`).
        steps: optimisation steps of this run.
        on_step: called with the number of steps done so far (a progress bar).

    Returns:
        The run's row of the history table (also appended to ``state.runs``):
        its settings, steps, seconds and held-out measures
        (:func:`course_utils.composite.finetune.evaluate`, 128 samples), and why it
        stopped early, if it did.
    """
    config = LossConfig(
        alpha=alpha, beta=beta, temperature=temperature, sigma=sigma, scale_noise=scale_noise
    )
    if int(steps) < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    t0 = time.perf_counter()
    _, history = fit(
        state.model,
        state.train_images,
        config,
        int(steps),
        state.optimizer,
        state.scheduler,
        terms=state.terms,
        seed=state.seed + 1000 * len(state.runs),
        on_step=on_step,
    )
    seconds = time.perf_counter() - t0
    measures = evaluate(
        state.model,
        state.test,
        temperature,
        sigma,
        n_samples=128,
        seed=state.seed,
        classifier=state.classifier,
    )
    row = {
        "run": len(state.runs) + 1,
        "alpha": alpha,
        "beta": beta,
        "temperature": temperature,
        "sigma": sigma,
        "scale_noise": scale_noise,
        "steps": history.steps,
        "total_steps": len(state.terms),
        "seconds": seconds,
        **measures,
        "stopped": history.stopped,
    }
    state.runs.append(row)
    return row


def playground_figure(state: PlaygroundState, temperature: float = 0.7, n: int = 36) -> Figure:
    """Samples at a temperature beside the curves of the three loss terms.

    Args:
        state: the playground.
        temperature: the samples' temperature (the same noise, rescaled, at
            every temperature: see :attr:`PlaygroundState.seed`).
        n: number of samples in the grid.

    Returns:
        The figure: a sample grid and one panel per loss term, with a dotted
        line where each run ended.
    """

    with torch.no_grad():
        samples = sample_with_grad(
            state.model, n, temperature, True, torch.Generator().manual_seed(state.seed)
        )
    fig = plt.figure(figsize=(10, 3.8), layout="constrained")
    grid = fig.add_gridspec(3, 2, width_ratios=[1, 1.5])
    ax = fig.add_subplot(grid[:, 0])
    image_grid(samples.nan_to_num(0.5).clamp(0, 1), nrow=6, ax=ax)
    ax.set_title(f"samples at T = {temperature:.2f}")
    names = {
        "nll": "NLL (bits/dim)",
        "recon": "recon. error R",
        "channel": "colour gap",
    }
    for k, (name, label) in enumerate(names.items()):
        ax = fig.add_subplot(grid[k, 1])
        values = getattr(state.terms, name)
        finite = [v for v in values if math.isfinite(v) and v > 0]
        power = 0  # small values are drawn in units of 10^power, named in the label
        if name == "recon" and finite and max(finite) > 10 * min(finite):
            ax.set_yscale("log")  # R spans decades when σ or α change between runs
        elif finite and max(finite) < 1e-2:
            power = math.floor(math.log10(max(finite)))
            label += f"\n(×1e{power})"
        if values:
            steps = range(1, len(values) + 1)
            scaled = [v / 10**power for v in values]
            ax.plot(steps, scaled, color=PALETTE[k], lw=0.8, alpha=0.35)  # every step
            ax.plot(steps, smoothed(scaled, SMOOTHING), color=PALETTE[k], lw=2)  # the trend
        if ax.get_yscale() == "log":
            log_ticks(ax)
        for run in state.runs[:-1]:
            ax.axvline(run["total_steps"] + 0.5, color="0.5", ls=":", lw=1)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        if k < 2:
            ax.tick_params(labelbottom=False)
    runs = len(state.runs)
    ax.set_xlabel(
        f"training step ({runs} run{'s' if runs != 1 else ''}; dotted lines between runs); "
        f"thin: each step's batch, thick: mean of the last {SMOOTHING} steps",
        fontsize=8,
    )
    fig.align_ylabels()
    return fig


def history_html(runs: list[dict]) -> str:
    """The runs as an HTML table, newest last (the playground's history)."""
    head = (
        "<tr><th>run</th><th>α</th><th>β</th><th>T</th><th>σ</th><th>noise</th><th>steps</th>"
        "<th>s</th><th>test bpd</th><th>colour gap</th><th>R (held out)</th>"
        "<th>overflow</th><th>digits</th><th></th></tr>"
    )
    rows = []
    for r in runs:
        overflow = max(r["recon_overflow"], r["sample_overflow"])
        digits = f"{r['recognisable']:.0%}" if "recognisable" in r else "–"
        rows.append(
            f"<tr><td>{r['run']}</td><td>{r['alpha']:g}</td><td>{r['beta']:.2f}</td>"
            f"<td>{r['temperature']:.2f}</td><td>{r['sigma']:.2f}</td>"
            f"<td>{'per dim' if r['scale_noise'] else 'length T'}</td>"
            f"<td>{r['steps']} / {r['total_steps']}</td><td>{r['seconds']:.0f}</td>"
            f"<td>{r['bpd']:.3f}</td><td>{r['channel_gap']:.4f}</td><td>{r['recon']:.2e}</td>"
            f"<td>{overflow:.0%}</td><td>{digits}</td>"
            f"<td>{'stopped early' if r['stopped'] else ''}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="14"><i>no run yet: press Train</i></td></tr>')
    style = "border-collapse:collapse;font-size:12px;text-align:right"
    return f'<table style="{style}" cellpadding="3">{head}{"".join(rows)}</table>'


class Playground(PanelGroup):
    """The loss playground: sliders, Train / Reset, a progress bar, samples, curves, history.

    The temperature slider re-draws the samples at once (no training); the
    other controls take effect at the next Train click, which continues
    training the same model for ``steps`` steps.

    Attributes:
        state: the :class:`PlaygroundState`.
        controls: name → widget (the keyword arguments of :func:`playground_train`).
        train_button, reset_button: the buttons.
        progress: an ``IntProgress`` updated after every training step.
        output: the ``Output`` showing :func:`playground_figure`.
        table: an ``HTML`` widget with :func:`history_html`.
        status: a one-line ``HTML`` message (what ran, errors).
        draws: how many times the figure was drawn (tests read it).
    """

    def __init__(self, state: PlaygroundState, **defaults: Any) -> None:
        self.state = state
        unknown = set(defaults) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; the panel has {list(DEFAULTS)}")
        d = {**DEFAULTS, **defaults}
        layout = W.Layout(width="320px")
        style = {"description_width": "initial"}
        self.controls: dict[str, W.ValueWidget] = {
            "alpha": W.FloatLogSlider(
                value=d["alpha"],
                base=10,
                min=-2,
                max=4,
                step=0.25,
                description="α (reconstruction)",
                continuous_update=False,
                readout_format=".3g",
                style=style,
                layout=layout,
            ),
            "beta": slider(d["beta"], 0.0, 10.0, 0.1, "β (channel means)"),
            "temperature": slider(d["temperature"], 0.1, 1.2, 0.05, "temperature T"),
            "sigma": slider(d["sigma"], 0.0, 0.5, 0.01, "σ (latent noise)"),
            "steps": W.IntSlider(
                value=d["steps"],
                min=5,
                max=200,
                step=5,
                description="steps per run",
                continuous_update=False,
                style=style,
                layout=layout,
            ),
            "scale_noise": W.Checkbox(
                value=d["scale_noise"], description="noise per dimension (Glow)", indent=False
            ),
        }
        self.train_button = W.Button(description="Train", button_style="primary", icon="play")
        self.reset_button = W.Button(description="Reset", button_style="warning")
        self.progress = W.IntProgress(value=0, min=0, max=d["steps"], description="steps")
        self.status = W.HTML("")
        self.output = W.Output()
        self.table = W.HTML(history_html(state.runs))
        self.draws = 0
        self.last_figure: Figure | None = None
        self.train_button.on_click(lambda _: self.train())
        self.reset_button.on_click(lambda _: self.reset())
        self.controls["temperature"].observe(lambda _: self.redraw(), names="value")
        sliders = W.HBox(list(self.controls.values()), layout=W.Layout(flex_flow="row wrap"))
        buttons = W.HBox([self.train_button, self.reset_button, self.progress, self.status])
        super().__init__(
            [
                W.HTML("<b>Loss playground: L = NLL + α·R + β·‖μ_c(x) − μ_c(x̂)‖₂</b>"),
                sliders,
                buttons,
                self.output,
                self.table,
            ]
        )
        self.redraw()

    def values(self) -> dict[str, Any]:
        """The current control values, keyed by :func:`playground_train`'s arguments."""
        return {name: w.value for name, w in self.controls.items()}

    def redraw(self) -> Figure | None:
        """Draw samples at the current temperature and the loss curves into ``output``."""
        try:
            fig = playground_figure(self.state, self.controls["temperature"].value)
        except ValueError as err:  # e.g. a temperature the sampler refuses
            self.status.value = f"<span style='color:#D55E00'>{err}</span>"
            return None
        self.draws += 1
        self.last_figure = fig
        show_figure(self.output, fig)
        return fig

    def train(self) -> dict | None:
        """What the Train button does: one :func:`playground_train` run, then redraw."""
        values = self.values()
        self.progress.max, self.progress.value = values["steps"], 0
        self.train_button.disabled = True
        self.status.value = "training…"
        try:
            row = playground_train(
                self.state, **values, on_step=lambda k: setattr(self.progress, "value", k)
            )
        except ValueError as err:  # a setting the loss refuses: say so, keep the panel alive
            self.status.value = f"<span style='color:#D55E00'>{err}</span>"
            return None
        finally:
            self.train_button.disabled = False
        self.status.value = f"run {row['run']}: {row['steps']} steps in {row['seconds']:.0f} s" + (
            f" — {row['stopped']}" if row["stopped"] else ""
        )
        self.table.value = history_html(self.state.runs)
        self.redraw()
        return row

    def reset(self) -> None:
        """What the Reset button does: the starting model, an empty history."""
        self.state.reset()
        self.progress.value = 0
        self.status.value = "reset to the starting model"
        self.table.value = history_html(self.state.runs)
        self.redraw()


def playground_panel(state: PlaygroundState, **defaults: Any) -> Playground:
    """Build the loss playground of lesson 09 around ``state`` (drawn once at once)."""
    return Playground(state, **defaults)


# ------------------------------------------------------ the lesson's study, drawn


def term_curves_figure(
    logs: dict[str, TermHistory],
    labels: dict[str, str],
    num_dims: int,
    nats: tuple[str, ...] = ("a",),
    every: int = 10,
) -> Figure:
    """The curve of every loss term for every configuration, side by side.

    Args:
        logs: configuration → its :class:`~course_utils.composite.finetune.TermHistory`.
        labels: configuration → legend label.
        num_dims: dimensions per image, to draw NLLs logged in nats as bits/dim.
        nats: the configurations whose NLL was logged in nats per image.
        every: steps averaged per point (a block with a non-finite value is a gap).

    Returns:
        Three panels: NLL in bits/dim, ``R`` (log scale) and the colour gap.
    """

    def blocks(values: list[float]) -> list[float]:
        k = every if len(values) >= every else 1
        v = torch.tensor(values[: len(values) // k * k]).view(-1, k)
        return v.mean(1).where(torch.isfinite(v).all(1), torch.tensor(math.nan)).tolist()

    def nll(name: str) -> list[float]:
        values = logs[name].nll
        if name in nats:
            return bits_per_dim_each(-torch.tensor(values), num_dims).tolist()
        return values

    k = every if min(len(v) for v in logs.values()) >= every else 1
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    titles = {
        "nll": "NLL (bits/dim)",
        "recon": "R, perturbed reconstruction",
        "channel": "colour gap ‖μ(x) − μ(x̂)‖",
    }
    for ax, (term, title) in zip(axes, titles.items(), strict=True):
        curves = {
            labels[n]: blocks(nll(n) if term == "nll" else getattr(log, term))
            for n, log in logs.items()
        }
        loss_curves(curves, ax=ax, xlabel="fine-tuning step", ylabel=title, x_every=k)
        if term == "recon":
            ax.set_yscale("log")
            log_ticks(ax)
        ax.get_legend().remove()
    handles = axes[0].get_legend_handles_labels()
    fig.legend(*handles, loc="outside upper center", ncol=len(logs), frameon=False)
    return fig
