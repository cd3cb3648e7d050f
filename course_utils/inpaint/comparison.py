"""Lesson 08's comparison: flow-only methods, flow-assisted methods and baselines.

Three groups of methods fill the same holes. Two scores judge them: the hole's
PSNR (how close in squared error), and **label consistency** (whether the shipped
digit classifier gives the completion the true label: whether it means the
right digit, :func:`label_consistency`).

* **baselines**, no flow: ``zero``, ``mean``, ``nn`` (the training digit nearest
  on the known pixels), ``kernel`` (the neighbour average,
  :func:`course_utils.inpaint.masks.kernel_fill`) and ``gaussian`` (the
  conditional mean of a Gaussian fitted to the training digits,
  :func:`course_utils.inpaint.masks.gaussian_fill`);
* **flow only**, no training image: ``ascent`` (:func:`~course_utils.inpaint.flow.pixel_inpaint`
  from the black fill), ``latent`` (latent MAP,
  :func:`~course_utils.inpaint.flow.latent_inpaint`), ``multistart`` (the mean of
  latent MAP fits from several starts), ``multistart-best`` (the fit of the lowest
  objective among them, :func:`~course_utils.inpaint.flow.multistart_inpaint`) and
  ``posterior`` (the mean of MALA chains,
  :func:`~course_utils.inpaint.flow.posterior_inpaint`);
* **flow-assisted**: the flow working on training neighbours: ``nn+ascent`` (the
  ascent started from the ``nn`` fill) and ``kernel+flow``
  (:func:`flow_kernel_inpaint`, the neighbour average with the flow's vote).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from course_utils.core.checks import check_int
from course_utils.core.metrics import masked_psnr
from course_utils.glow.digits import probabilities
from course_utils.glow.model import BATCH_CHUNK, log_prob_in_batches
from course_utils.inpaint.flow import (
    latent_inpaint,
    multistart_inpaint,
    pixel_inpaint,
    posterior_inpaint,
)
from course_utils.inpaint.masks import (
    FLOW_BANDWIDTH,
    FLOW_TEMPERATURE,
    NEIGHBOURS,
    InpaintResult,
    blend_neighbours,
    check_inputs,
    check_train,
    frozen,
    gaussian_fill,
    kernel_fill,
    mean_fill,
    nearest_neighbour_fill,
    neighbour_weights,
    neighbours,
    zero_fill,
)

__all__ = [
    "METHODS",
    "GROUPS",
    "flow_kernel_inpaint",
    "SETTINGS",
    "fill",
    "fill_many",
    "label_consistency",
    "class_shares",
    "compare",
    "psnr_rows",
    "best",
    "paired_gain",
    "psnr_table",
    "label_table",
]

Tensor = torch.Tensor

#: Every method of the comparison → its group.
METHODS = {
    "zero": "baseline",
    "mean": "baseline",
    "nn": "baseline",
    "kernel": "baseline",
    "gaussian": "baseline",
    "ascent": "flow",
    "latent": "flow",
    "multistart": "flow",
    "multistart-best": "flow",
    "posterior": "flow",
    "nn+ascent": "assisted",
    "kernel+flow": "assisted",
}

#: The words the tables use for the groups.
GROUPS = {"baseline": "baselines", "flow": "flow only", "assisted": "flow-assisted"}


def flow_kernel_inpaint(
    model: nn.Module,
    images: Tensor,
    mask: Tensor,
    train_images: Tensor,
    k: int = NEIGHBOURS,
    bandwidth: float = FLOW_BANDWIDTH,
    temperature: float = FLOW_TEMPERATURE,
    batch_size: int = BATCH_CHUNK,
) -> InpaintResult:
    """:func:`course_utils.inpaint.masks.kernel_fill` with the flow's vote on each neighbour's hole.

    Each of the ``k`` nearest training images ``t_i`` proposes its hole ``c_i``.
    The flow scores how well ``c_i`` fits *this* image's known pixels:

        ``s_i = log p(x_known ⊕ c_i) − log p(t_i)``

    The second term is the likelihood of the neighbour with its own known
    pixels. It cancels what ``c_i`` is worth on its own: a flow finds a blank
    hole likelier than a stroke, so ``log p(x_known ⊕ c_i)`` alone prefers
    the emptiest neighbour (the likelihood-ratio idea of lesson 10). The
    weights are ``softmax(−d_i / (bandwidth · d₁) + s_i / (temperature · n))``
    (:func:`course_utils.inpaint.masks.neighbour_weights`) with ``n`` the number of
    missing values, and the fill is the weighted average of the ``c_i``. With
    ``temperature → ∞`` it is :func:`course_utils.inpaint.masks.kernel_fill` with the same
    ``bandwidth``.

    Args:
        model: a flow with ``log_prob(x) -> (batch,)`` on ``[0, 1]`` images.
        images: float ``(batch, C, H, W)`` in ``[0, 1]``.
        mask: ``True`` where pixels are missing.
        train_images: float ``(N, C, H, W)`` in ``[0, 1]``, the pool of neighbours.
        k: number of neighbours.
        bandwidth: width of the distance kernel, relative to the nearest distance.
        temperature: nats per missing value that count as much as one kernel unit.
        batch_size: images per call of ``model.log_prob``.

    Returns:
        :class:`course_utils.inpaint.masks.InpaintResult`: ``log_prob`` ``(1, batch)``;
        ``extra`` with ``"index"`` (the neighbours, ``(batch, k)``), ``"distance"``
        (the ``d_i``), ``"log_p_candidates"`` (``log p(x_known ⊕ c_i)``),
        ``"score"`` (the ``s_i``), ``"weights"`` and ``"kernel_weights"`` (with
        and without the flow's vote).
    """
    mask = check_inputs(images, mask, model)
    check_train(train_images, images)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    restore = frozen(model)
    start = time.perf_counter()
    try:
        dist, idx = neighbours(images, mask, train_images, k)
        cand = torch.where(mask[:, None], train_images[idx].to(images), images[:, None])
        with torch.no_grad():
            here = log_prob_in_batches(model, cand.flatten(0, 1), batch_size).view_as(dist)
            pool, where = idx.unique(return_inverse=True)
            own = log_prob_in_batches(model, train_images[pool].to(images), batch_size)[where]
            score = here - own
            weights = neighbour_weights(dist, bandwidth, score, mask, temperature)
            out = blend_neighbours(images, mask, train_images, idx, weights)
            log_p = model.log_prob(out)
    finally:
        restore()
    extra = {
        "index": idx,
        "distance": dist,
        "log_p_candidates": here,
        "score": score,
        "weights": weights,
        "kernel_weights": neighbour_weights(dist, bandwidth),
    }
    return InpaintResult(out, log_p[None], time.perf_counter() - start, extra)


#: The settings :func:`fill` gives the flow methods unless told otherwise.
SETTINGS: dict[str, dict] = {
    "ascent": {"steps": 400},
    "latent": {"steps": 60},
    "multistart": {"starts": 3, "steps": 40, "lr": 0.075},
    "posterior": {"chains": 4, "steps": 40, "warmup": 20, "latent_steps": 60},
}


def fill(
    method: str,
    model: nn.Module | None,
    images: Tensor,
    mask: Tensor,
    train_images: Tensor | None,
    settings: dict | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Complete a batch with one of :data:`METHODS`.

    Args:
        method: a name from :data:`METHODS`.
        model: the flow (not used by the baselines).
        images, mask: the problem.
        train_images: the pool of the baselines and the flow-assisted methods
            (not used by the flow-only methods).
        settings: keyword arguments for the method's function, over :data:`SETTINGS`
            (e.g. ``{"fit": gaussian_fit(train)}`` for ``gaussian``, fitted once).
        generator: seeds the random starts and the posterior sampler.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {list(METHODS)}")

    name = {"nn+ascent": "ascent", "multistart-best": "multistart"}.get(method, method)
    kw = {**SETTINGS.get(name, {}), **(settings or {})}
    if METHODS[method] != "flow" and train_images is None:
        raise ValueError(f"method {method!r} needs train_images")
    if method == "zero":
        return zero_fill(images, mask)
    if method == "mean":
        return mean_fill(images, mask, train_images)
    if method == "nn":
        return nearest_neighbour_fill(images, mask, train_images)
    if method == "kernel":
        return kernel_fill(images, mask, train_images)
    if method == "gaussian":
        return gaussian_fill(images, mask, train_images, **kw)
    if model is None:
        raise ValueError(f"method {method!r} needs a model")
    if method == "kernel+flow":
        return flow_kernel_inpaint(model, images, mask, train_images, **kw).images
    if method == "latent":
        return latent_inpaint(model, images, mask, **kw).images
    if method in ("multistart", "multistart-best"):
        res = multistart_inpaint(model, images, mask, generator=generator, **kw)
        return res.images if method == "multistart" else res.extra["best"]
    if method == "posterior":
        return posterior_inpaint(model, images, mask, generator=generator, **kw).images
    init = nearest_neighbour_fill(images, mask, train_images) if method == "nn+ascent" else "zero"
    return pixel_inpaint(model, images, mask, init=init, **kw).images


def fill_many(
    methods: tuple[str, ...],
    model: nn.Module | None,
    images: Tensor,
    mask: Tensor,
    train_images: Tensor | None,
    settings: dict[str, dict] | None = None,
    generator: torch.Generator | None = None,
    extras: dict | None = None,
) -> dict[str, tuple[Tensor, float]]:
    """:func:`fill` for several methods: method → (completed images, seconds).

    ``latent``, ``multistart`` and ``multistart-best`` share one run of
    :func:`~course_utils.inpaint.flow.multistart_inpaint` when ``multistart`` is
    among ``methods`` and ``latent`` has no settings of its own: the latent MAP
    fit is its first start (from ``z = 0``). The three then report that run's time,
    and ``extras["multistart"]`` (when ``extras`` is a dict) gets that run's ``extra``
    (its fits and their objectives).
    """
    settings = settings or {}
    shared = {"latent", "multistart", "multistart-best"} & set(methods)
    if "multistart" not in methods or "latent" in settings:
        shared -= {"latent"}
    if "multistart" not in methods:
        shared = set()
    out = {}
    if shared:
        if model is None:
            raise ValueError("the multistart methods need a model")
        kw = {**SETTINGS["multistart"], **settings.get("multistart", {})}
        start = time.perf_counter()
        res = multistart_inpaint(model, images, mask, generator=generator, **kw)
        seconds = time.perf_counter() - start
        if extras is not None:
            extras["multistart"] = res.extra
        fits = {
            "latent": res.extra["fits"][:, 0],
            "multistart": res.images,
            "multistart-best": res.extra["best"],
        }
        out |= {m: (fits[m], seconds) for m in shared}
    for method in methods:
        if method in out:
            continue
        start = time.perf_counter()
        done = fill(method, model, images, mask, train_images, settings.get(method), generator)
        out[method] = (done, time.perf_counter() - start)
    return {m: out[m] for m in methods}


def label_consistency(classifier: nn.Module, completions: Tensor, labels: Tensor) -> Tensor:
    """Whether the classifier's label of each completion is the true label: bool ``(batch,)``.

    A completion *means* the right digit when a classifier trained on whole
    digits reads it as the digit it was made from: a score of meaning, where the
    PSNR scores closeness in squared error.

    Args:
        classifier: e.g. ``pretrained.load("digit-classifier")``.
        completions: float ``(batch, 1, 28, 28)`` in ``[0, 1]``.
        labels: int ``(batch,)``, the true labels.
    """
    if labels.shape != (len(completions),):
        raise ValueError(f"labels must have shape ({len(completions)},), got {tuple(labels.shape)}")
    return probabilities(classifier, completions).argmax(1) == labels


def class_shares(classifier: nn.Module, completions: Tensor, classes: tuple[int, ...]) -> dict:
    """The share of completions the classifier reads as each of ``classes``, and as another.

    Args:
        classifier: the digit classifier.
        completions: float ``(N, 1, 28, 28)`` in ``[0, 1]``.
        classes: the labels to count (e.g. the two an ambiguous mask leaves open).

    Returns:
        label → share (``int`` keys) and ``"other"`` → share; they sum to 1.
    """
    read = probabilities(classifier, completions).argmax(1)
    shares = {c: float((read == c).float().mean()) for c in classes}
    shares["other"] = float((~torch.isin(read, torch.tensor(classes))).float().mean())
    return shares


def compare(
    model: nn.Module,
    images: Tensor,
    masks: dict[str, Tensor],
    train_images: Tensor,
    methods: tuple[str, ...] = tuple(METHODS),
    batch_size: int = 64,
    settings: dict[str, dict] | None = None,
    seed: int = 0,
    classifier: nn.Module | None = None,
    labels: Tensor | None = None,
) -> list[dict]:
    """Hole PSNR, label consistency and time of every method on every mask type.

    Args:
        model: the flow.
        images: float ``(N, C, H, W)`` in ``[0, 1]``, held-out images.
        masks: mask type → bool ``(N, C, H, W)`` masks of those images.
        train_images: the pool of the baselines and the flow-assisted methods.
        methods: names from :data:`METHODS`.
        batch_size: images per call; the time is reported per batch.
        settings: method → settings for :func:`fill`.
        seed: seeds the random starts and the sampler (once per mask type).
        classifier, labels: with both, each row also gets ``label_consistency``
            (the share of completions the classifier reads as the true label) and
            ``label_per_image`` (1/0 per image).

    Returns:
        One dict per (mask, method): ``group`` (:data:`METHODS`), ``psnr`` (mean
        over images, dB), ``psnr_sem`` (its standard error), ``psnr_per_image``
        and ``seconds_per_batch`` (methods run together by :func:`fill_many`
        report their shared time).
    """

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(METHODS)}")
    batch_size = check_int("batch_size", batch_size, minimum=1)
    flow = model if any(METHODS[m] != "baseline" for m in methods) else None
    for mask in masks.values():  # every problem is checked before any method runs
        check_inputs(images, mask, flow)
    if (classifier is None) != (labels is None):
        raise ValueError("label consistency needs both classifier and labels")
    rows = []
    for kind, mask in masks.items():
        generator = torch.Generator().manual_seed(seed)
        done = {m: ([], []) for m in methods}
        for xb, mb in zip(images.split(batch_size), mask.split(batch_size), strict=True):
            filled = fill_many(methods, model, xb, mb, train_images, settings, generator)
            for method, (out, seconds) in filled.items():
                done[method][0].append(out)
                done[method][1].append(seconds)
        for method in methods:
            out, seconds = torch.cat(done[method][0]), done[method][1]
            (row,) = psnr_rows(images, {kind: mask}, {kind: {method: out}}, classifier, labels)
            rows.append(row | {"seconds_per_batch": sum(seconds) / len(seconds)})
    return rows


def psnr_rows(
    images: Tensor,
    masks: dict[str, Tensor],
    fills: dict[str, dict[str, Tensor]],
    classifier: nn.Module | None = None,
    labels: Tensor | None = None,
) -> list[dict]:
    """:func:`compare`'s rows (without timings) from fills made elsewhere.

    Args:
        images: the originals ``(N, C, H, W)``.
        masks: mask type → its masks ``(N, C, H, W)``.
        fills: mask type → method (of :data:`METHODS`) → completed images ``(N, C, H, W)``.
        classifier, labels: with both, the rows get the label consistency (:func:`compare`).
    """
    if (classifier is None) != (labels is None):
        raise ValueError("label consistency needs both classifier and labels")

    rows = []
    for kind, by_method in fills.items():
        for method, out in by_method.items():
            if method not in METHODS:
                raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
            psnr = masked_psnr(out, images, masks[kind])
            rows.append(
                {
                    "mask": kind,
                    "method": method,
                    "group": METHODS[method],
                    "psnr": float(psnr.mean()),
                    "psnr_sem": float(psnr.std() / len(psnr) ** 0.5),
                    "psnr_per_image": psnr.tolist(),
                }
            )
            if classifier is not None:
                same = label_consistency(classifier, out, labels).float()
                rows[-1] |= {
                    "label_consistency": float(same.mean()),
                    "label_per_image": same.tolist(),
                }
    return rows


def best(rows: list[dict], kind: str, group: str) -> dict | None:
    """The row of the best method of ``group`` on mask type ``kind`` (None if there is none)."""
    mine = [r for r in rows if r["mask"] == kind and r["group"] == group]
    return max(mine, key=lambda r: r["psnr"]) if mine else None


def paired_gain(a: dict, b: dict) -> tuple[float, float]:
    """Mean PSNR gain of row ``a`` over row ``b`` on the same images, and its standard error."""
    diff = torch.tensor(a["psnr_per_image"]) - torch.tensor(b["psnr_per_image"])
    if len(diff) < 2:
        raise ValueError("a paired gain needs at least two images")
    return float(diff.mean()), float(diff.std() / len(diff) ** 0.5)


def psnr_table(rows: list[dict]) -> str:
    """A text table of :func:`compare`'s rows: mask types × methods, grouped, with paired gains.

    The last columns give the paired gain (± standard error) of the best
    flow-only and the best flow-assisted method over the best baseline. A
    method missing for a mask type (a run still going) shows as "–".
    """
    methods = list(dict.fromkeys(r["method"] for r in rows))
    kinds = list(dict.fromkeys(r["mask"] for r in rows))
    width = max(8, *map(len, methods)) + 1
    groups = [g for g in GROUPS if any(METHODS[m] == g for m in methods)]
    spans = "".join(
        f"{GROUPS[g]:^{width * sum(METHODS[m] == g for m in methods)}s}" for g in groups
    )
    order = [m for g in groups for m in methods if METHODS[m] == g]
    lines = [f"{'':9s}{spans}", f"{'mask':9s}" + "".join(f"{m:>{width}s}" for m in order)]
    lines[1] += "   best flow only − best baseline   best flow-assisted − best baseline"
    for kind in kinds:
        vals = {r["method"]: r for r in rows if r["mask"] == kind}
        line = f"{kind:9s}" + "".join(  # a method not yet measured on this mask type: "–"
            f"{vals[m]['psnr']:{width}.2f}" if m in vals else f"{'–':>{width}s}" for m in order
        )
        base = best(rows, kind, "baseline")
        for group in ("flow", "assisted"):
            top = best(rows, kind, group)
            if base is None or top is None:
                continue
            gain, sem = paired_gain(top, base)
            line += f"   {top['method']:>11s} {gain:+6.2f} ± {sem:.2f} dB"
        lines.append(line)
    return "\n".join(lines)


def label_table(rows: list[dict]) -> str:
    """A text table of the rows' label consistency: mask types × methods, in per cent.

    The last column compares the best flow-only method with the neighbour average
    (``kernel``), the paired difference in percentage points ± its standard error.
    """
    rows = [r for r in rows if "label_consistency" in r]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    kinds = list(dict.fromkeys(r["mask"] for r in rows))
    order = [m for g in GROUPS for m in methods if METHODS[m] == g]
    width = max(8, *map(len, order)) + 1
    head = f"{'mask':9s}" + "".join(f"{m:>{width}s}" for m in order)
    lines = [head + "   best flow only − kernel (points)"]
    for kind in kinds:
        vals = {r["method"]: r for r in rows if r["mask"] == kind}
        line = f"{kind:9s}" + "".join(
            f"{100 * vals[m]['label_consistency']:{width}.0f}" if m in vals else f"{'–':>{width}s}"
            for m in order
        )
        flow = [vals[m] for m in order if METHODS[m] == "flow" and m in vals]
        if flow and "kernel" in vals:
            top = max(flow, key=lambda r: r["label_consistency"])
            diff = torch.tensor(top["label_per_image"]) - torch.tensor(
                vals["kernel"]["label_per_image"]
            )
            sem = float(diff.std() / len(diff) ** 0.5) if len(diff) > 1 else float("nan")
            line += f"   {top['method']:>15s} {100 * float(diff.mean()):+5.1f} ± {100 * sem:.1f}"
        lines.append(line)
    return "\n".join(lines)
