"""Interactive panels: controls plus an ``Output``, around plain functions.

The pattern of every panel in the course: a *plain* function that takes the
control values as keyword arguments and returns a matplotlib figure (tests and
the notebook call it directly), wrapped by :func:`panel`, which draws the
controls and re-runs the function when one of them changes (sliders use
``continuous_update=False``, so a drag triggers one redraw on release) or,
for expensive work, only when a button is clicked.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
from IPython.display import display
from matplotlib.figure import Figure


def slider(
    value: float,
    min: float,
    max: float,
    step: float,
    description: str,
    readout_format: str = ".2f",
) -> W.FloatSlider:
    """A float slider that reports only on release (``continuous_update=False``)."""
    return W.FloatSlider(
        value=value,
        min=min,
        max=max,
        step=step,
        description=description,
        continuous_update=False,
        readout_format=readout_format,
        style={"description_width": "initial"},
        layout=W.Layout(width="320px"),
    )


def show_figure(output: W.Output, fig: Figure) -> None:
    """Replace what ``output`` shows by ``fig``, and close ``fig`` so it is not drawn twice."""
    output.clear_output(wait=True)
    with output:
        display(fig)
    plt.close(fig)  # shown once, in the Output, not again below the cell


#: What a notebook shows in place of a panel when no kernel runs it (e.g. on GitHub).
NOT_RUNNING_HINT = "[an interactive panel: run the notebook to use its controls]"


class PanelGroup(W.VBox):
    """Panels stacked in one box; without a running kernel it shows a one-line hint."""

    def __repr__(self) -> str:
        return NOT_RUNNING_HINT


class Panel(PanelGroup):
    """Controls above an ``Output`` that shows what ``fn(**values)`` draws.

    Attributes:
        controls: name → widget; the names are ``fn``'s keyword arguments.
        output: the ``Output`` widget holding the latest figure.
        button: the run button, or None when every change redraws.
        runs: how many times ``fn`` has been called (tests read it).
        last_figure: the figure of the latest call.
    """

    def __init__(
        self,
        fn: Callable[..., Figure],
        controls: Mapping[str, W.ValueWidget],
        button: str | None = None,
        title: str | None = None,
    ) -> None:
        self.fn = fn
        self.controls = dict(controls)
        self.output = W.Output()
        self.button = W.Button(description=button, button_style="primary") if button else None
        self.runs = 0
        self.last_figure: Figure | None = None
        row = list(self.controls.values()) + ([self.button] if self.button else [])
        header = [W.HTML(f"<b>{title}</b>")] if title else []
        super().__init__([*header, W.HBox(row, layout=W.Layout(flex_flow="row wrap")), self.output])
        if self.button is not None:
            self.button.on_click(lambda _: self.update())
        else:
            for widget in self.controls.values():
                widget.observe(lambda _: self.update(), names="value")

    def values(self) -> dict[str, Any]:
        """The current control values, keyed by ``fn``'s argument names."""
        return {name: w.value for name, w in self.controls.items()}

    def update(self) -> Figure:
        """Call ``fn`` with the current values and show its figure in ``output``."""
        fig = self.fn(**self.values())
        self.runs += 1
        self.last_figure = fig
        show_figure(self.output, fig)
        return fig


def panel(
    fn: Callable[..., Figure],
    controls: Mapping[str, W.ValueWidget],
    button: str | None = None,
    title: str | None = None,
) -> Panel:
    """Build a :class:`Panel` and draw it once with the initial values."""
    p = Panel(fn, controls, button=button, title=title)
    p.update()
    return p


def warp_figure(
    skew: float = 0.0, tail: float = 1.0, scale: float = 1.0, loc: float = 0.0
) -> Figure:
    """Lesson 01's panel function: a Gaussian warped by a sinh-arcsinh map.

    A plain function (the panel calls it; tests call it directly).
    """
    from course_utils.bijections import SinhArcsinh
    from course_utils.config import pick
    from course_utils.plots import change_of_variables_1d

    f = SinhArcsinh(skew=skew, tail=tail, loc=loc, scale=scale)
    return change_of_variables_1d(f, n_samples=pick(100_000, 20_000))


def warp_panel() -> Panel:
    """Sliders for skew, tail weight, scale and shift around :func:`warp_figure`."""
    return panel(
        warp_figure,
        {
            "skew": slider(0.0, -2.0, 2.0, 0.1, "skew ε"),
            "tail": slider(1.0, 0.4, 2.5, 0.05, "tail δ"),
            "scale": slider(1.0, 0.3, 2.5, 0.05, "scale"),
            "loc": slider(0.0, -2.0, 2.0, 0.1, "shift"),
        },
        title="Warp a Gaussian: x = shift + scale · sinh((asinh(z) + ε) / δ)",
    )


def inpaint_figure(
    model,
    images,
    train_images,
    index: int = 0,
    kind: str = "centre",
    size: int = 12,
    steps: int = 60,
) -> Figure:
    """Lesson 08's panel function: one held-out image, one mask, every method.

    A plain function (the panel calls it; tests call it directly). Draws the
    masked image, the nearest-neighbour fill, the likelihood ascent from the
    mean fill, the ascent from the neighbour's fill, the neighbours weighed by
    the flow (:func:`course_utils.inpaint.flow_kernel_inpaint`) and the original,
    each with its hole PSNR, and the log-likelihood of both ascents step by step.

    Args:
        model: the trained flow.
        images: float held-out images ``(N, C, H, W)`` in ``[0, 1]``.
        train_images: float training images (the baselines' pool).
        index: which held-out image.
        kind: a mask kind of :data:`course_utils.inpaint.MASK_KINDS`.
        size: side of the square masks; for ``"noise"``, the missing
            percentage is ``size / 28``.
        steps: optimisation steps.
    """
    from course_utils import inpaint as ip
    from course_utils.metrics import masked_psnr

    x = images[index : index + 1]
    gen = torch.Generator().manual_seed(index)  # the same mask for the same settings
    mask = ip.make_masks(kind, 1, tuple(x.shape[1:]), size=size, fraction=size / 28, generator=gen)
    nn_fill = ip.nearest_neighbour_fill(x, mask, train_images)
    ascent = ip.pixel_inpaint(model, x, mask, steps, init=ip.mean_fill(x, mask, train_images))
    refined = ip.pixel_inpaint(model, x, mask, steps, init=nn_fill)
    weighed = ip.flow_kernel_inpaint(model, x, mask, train_images).images
    with torch.no_grad():
        truth = model.log_prob(x).item()
    panels = [
        ("masked", ip.hole_view(x, mask)),
        ("nearest neighbour", nn_fill),
        ("likelihood ascent", ascent.images),
        ("neighbour + ascent", refined.images),
        ("neighbours weighed\nby the flow", weighed),
        ("original", x),
    ]
    fig = plt.figure(figsize=(13.5, 2.9))
    grid = fig.add_gridspec(1, len(panels) + 2)
    for i, (name, img) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        shown = img[0].permute(1, 2, 0).clamp(0, 1).numpy()
        ax.imshow(shown[..., 0] if shown.shape[-1] == 1 else shown, cmap="gray", vmin=0, vmax=1)
        if name not in ("masked", "original"):
            name += f"\n{masked_psnr(img, x, mask).item():.1f} dB"
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    ax = fig.add_subplot(grid[0, len(panels) :])
    ax.plot(ascent.log_prob[:, 0], label="ascent")
    ax.plot(refined.log_prob[:, 0], label="neighbour + ascent")
    ax.axhline(truth, color="k", ls="--", lw=1, label="original")
    ax.set_xlabel("step")
    ax.set_ylabel("log p (nats)")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    fig.suptitle(f"held-out image {index}, mask '{kind}': hole PSNR, higher is better", fontsize=10)
    fig.tight_layout()
    return fig


def inpaint_panel(model, images, train_images, steps: int = 60) -> Panel:
    """Image index, mask kind and size, steps → :func:`inpaint_figure`, behind a button.

    ``steps`` is the steps slider's starting value.
    """
    from functools import partial

    from course_utils.inpaint import MASK_KINDS

    fn = partial(inpaint_figure, model, images, train_images)
    int_style = {"style": {"description_width": "initial"}, "continuous_update": False}
    return panel(
        fn,
        {
            "index": W.IntSlider(0, 0, len(images) - 1, description="image", **int_style),
            "kind": W.Dropdown(options=MASK_KINDS, value="centre", description="mask"),
            "size": W.IntSlider(12, 2, 26, description="size (px)", **int_style),
            "steps": W.IntSlider(steps, 0, 200, 5, description="steps", **int_style),
        },
        button="Inpaint",
        title="Zero-shot inpainting: pick an image and a mask, then press Inpaint",
    )


# ------------------------------------------------ lesson 09: the loss playground


class PlaygroundState:
    """Everything the loss playground trains and remembers between clicks.

    Attributes:
        model: the :class:`course_utils.models.Glow` being trained (continued by each run).
        optimizer, scheduler: kept between runs, so a run continues the last one.
        train_images: ``uint8`` training images ``(N, 3, 28, 28)``.
        test: dequantized held-out images used by the history table.
        terms: every step's loss terms, all runs together
            (:class:`course_utils.losses.TermHistory`).
        runs: one dict per run: its settings, held-out measures and
            ``total_steps``, the step count at its end.
        seed: seeds the batches and, for every figure, the noise of the sample
            grid, so that a new temperature rescales the same noise and only the
            temperature changes.
    """

    def __init__(
        self,
        model,
        train_images,
        test_images,
        n_test: int = 500,
        seed: int = 0,
    ) -> None:
        import copy

        from course_utils.losses import PLAYGROUND_RECIPE, TermHistory
        from course_utils.models import dequantize, make_optimizer

        if test_images.dtype != torch.uint8 or test_images.ndim != 4:
            raise ValueError(
                "test_images must be uint8 (N, C, H, W), got "
                f"{test_images.dtype} {tuple(test_images.shape)}"
            )
        # ActNorm initialises itself on the first batch it sees, in either
        # direction: make that a batch of data, not the panel's first samples.
        with torch.no_grad():
            model.log_prob(dequantize(train_images[:256], torch.Generator().manual_seed(seed)))
        self.model = model.eval()
        self.optimizer, self.scheduler = make_optimizer(model, PLAYGROUND_RECIPE)
        self.train_images = train_images
        self.test = dequantize(test_images[:n_test], torch.Generator().manual_seed(1))
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
        from course_utils.losses import TermHistory

        self.model.load_state_dict(self._initial["model"])
        self.optimizer.load_state_dict(self._initial["optimizer"])
        self.scheduler.load_state_dict(self._initial["scheduler"])
        self.model.eval()
        self.terms = TermHistory.empty()
        self.runs = []


def playground_train(
    state: PlaygroundState,
    alpha: float = 1000.0,
    beta: float = 1.0,
    temperature: float = 0.7,
    sigma: float = 0.1,
    steps: int = 100,
    scale_noise: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """One run of the playground: continue training with these settings, then measure.

    A plain function: the panel's Train button calls it, and so do the lesson
    and the tests.

    Args:
        state: the :class:`PlaygroundState` to continue.
        alpha, beta, temperature, sigma, scale_noise: the loss settings
            (:class:`course_utils.losses.LossConfig`).
        steps: optimisation steps of this run.
        on_step: called with the number of steps done so far (a progress bar).

    Returns:
        The run's row of the history table (also appended to ``state.runs``):
        its settings, steps, seconds and held-out measures
        (:func:`course_utils.losses.evaluate`), and why it stopped early, if it did.
    """
    import time

    from course_utils.losses import LossConfig, evaluate, fit

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
    measures = evaluate(state.model, state.test, temperature, sigma, seed=state.seed)
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
    from course_utils.losses import sample_with_grad
    from course_utils.plots import PALETTE, image_grid

    with torch.no_grad():
        samples = sample_with_grad(
            state.model, n, temperature, True, torch.Generator().manual_seed(state.seed)
        )
    fig = plt.figure(figsize=(10, 3.8), layout="constrained")
    grid = fig.add_gridspec(3, 2, width_ratios=[1, 1.5])
    ax = fig.add_subplot(grid[:, 0])
    image_grid(samples.nan_to_num(0.5), nrow=6, ax=ax)
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
            ax.plot(
                range(1, len(values) + 1), [v / 10**power for v in values], color=PALETTE[k], lw=1.2
            )
        for run in state.runs[:-1]:
            ax.axvline(run["total_steps"] + 0.5, color="0.5", ls=":", lw=1)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if k < 2:
            ax.tick_params(labelbottom=False)
    runs = len(state.runs)
    ax.set_xlabel(
        f"training step ({runs} run{'s' if runs != 1 else ''}; dotted lines between runs)"
    )
    fig.align_ylabels()
    return fig


def history_html(runs: list[dict]) -> str:
    """The runs as an HTML table, newest last (the playground's history)."""
    head = (
        "<tr><th>run</th><th>α</th><th>β</th><th>T</th><th>σ</th><th>noise</th><th>steps</th>"
        "<th>s</th><th>test bpd</th><th>colour gap</th><th>R (held out)</th>"
        "<th>overflow</th><th></th></tr>"
    )
    rows = []
    for r in runs:
        overflow = max(r["recon_overflow"], r["sample_overflow"])
        rows.append(
            f"<tr><td>{r['run']}</td><td>{r['alpha']:g}</td><td>{r['beta']:.2f}</td>"
            f"<td>{r['temperature']:.2f}</td><td>{r['sigma']:.2f}</td>"
            f"<td>{'per dim' if r['scale_noise'] else 'length T'}</td>"
            f"<td>{r['steps']} / {r['total_steps']}</td><td>{r['seconds']:.0f}</td>"
            f"<td>{r['bpd']:.3f}</td><td>{r['channel_gap']:.4f}</td><td>{r['recon']:.2e}</td>"
            f"<td>{overflow:.0%}</td><td>{'stopped early' if r['stopped'] else ''}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="13"><i>no run yet: press Train</i></td></tr>')
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
        d = {
            "alpha": 1000.0,
            "beta": 1.0,
            "temperature": 0.7,
            "sigma": 0.1,
            "steps": 100,
            "scale_noise": True,
            **defaults,
        }
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
                min=10,
                max=500,
                step=10,
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
