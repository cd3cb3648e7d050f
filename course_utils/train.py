"""One training loop for every flow in the course.

``train`` minimises ``loss_fn(model, batch)`` over mini-batches and takes care
of the chores every lesson needs: a progress bar (silent when nobody watches),
the loss history, a NaN/inf guard, atomic checkpoints, resuming, a wall-clock
budget and the choice of device.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

LossFn = Callable[[nn.Module, Any], torch.Tensor]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto" | "cpu" | "cuda" | "mps"`` into an available ``torch.device``.

    Args:
        device: a name or a device; ``"auto"`` picks CUDA, then MPS, then CPU.

    Returns:
        The device.

    Raises:
        ValueError: the name is unknown or that device is not available here.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    kind = name.split(":")[0]
    if kind not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'mps', got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use 'auto'")
    if kind == "mps" and not has_mps:
        raise ValueError("device 'mps' was asked for but it is not available; use 'auto'")
    return torch.device(name)


def _interactive() -> bool:
    """True in a notebook or a terminal, False under pytest/CI/pipes."""
    if os.environ.get("CI") or "pytest" in sys.modules:
        return False
    try:
        from IPython import get_ipython

        if get_ipython() is not None:
            return True
    except ImportError:
        pass
    return sys.stderr.isatty()


# --------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` atomically (temporary file + rename).

    A crash while writing leaves the previous checkpoint intact, never a
    half-written file under the final name.

    Args:
        path: where to write.
        state: tensors, state dicts, numbers, strings, lists and dicts only,
            so that :func:`load_checkpoint` can read it with ``weights_only=True``.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, safely.

    ``weights_only=True`` refuses to unpickle arbitrary objects, so a
    checkpoint from an untrusted source cannot run code.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several unrelated types here
        raise ValueError(f"{path} is not a readable checkpoint: {err}") from err


# ------------------------------------------------------------------ history


@dataclass
class History:
    """What a training run recorded.

    Attributes:
        step_loss: the loss of every optimisation step.
        epoch_loss: the mean training loss of each epoch.
        eval: the value of ``eval_fn`` after each epoch (empty without one).
        seconds: wall-clock seconds of training at the end of each epoch.
        steps: optimisation steps taken in total (resumed runs included).
        stopped: why training ended early (``""`` if it did not).
    """

    step_loss: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    eval: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    steps: int = 0
    stopped: str = ""

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> History:
        return cls(**{k: copy.copy(v) for k, v in state.items() if k in cls.__dataclass_fields__})


def _batches(
    data: Any, batch_size: int, generator: torch.Generator, steps: int | None = None
) -> Iterable[Any]:
    """A shuffled epoch of mini-batches from a tensor, or the iterable as is.

    With ``steps``, an epoch is ``steps`` batches drawn from fresh permutations
    (every example is seen once before any is seen twice), which makes the
    epochs of a large dataset short enough to evaluate often.
    """
    if not isinstance(data, torch.Tensor):
        return data
    if steps is None:
        order = torch.randperm(len(data), generator=generator)
        return (data[order[i : i + batch_size]] for i in range(0, len(data), batch_size))
    perms = -(-steps * batch_size // len(data))
    order = torch.cat([torch.randperm(len(data), generator=generator) for _ in range(perms)])
    return (data[order[i * batch_size : (i + 1) * batch_size]] for i in range(steps))


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to(b, device) for b in batch)
    return batch


def _finite_grads(model: nn.Module) -> bool:
    return all(p.grad is None or bool(torch.isfinite(p.grad).all()) for p in model.parameters())


def train(
    model: nn.Module,
    loss_fn: LossFn,
    data: torch.Tensor | Iterable[Any],
    *,
    epochs: int = 1,
    batch_size: int = 256,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 1e-3,
    scheduler: Any | None = None,
    device: str | torch.device = "auto",
    max_grad_norm: float | None = None,
    max_seconds: float | None = None,
    eval_fn: Callable[[nn.Module], float] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool | None = None,
    seed: int = 0,
    extra_state: dict[str, Any] | None = None,
    steps_per_epoch: int | None = None,
    on_epoch_end: Callable[[History], None] | None = None,
) -> History:
    """Train ``model`` by minimising ``loss_fn(model, batch)``.

    Args:
        model: any ``nn.Module``; it is moved to ``device``.
        loss_fn: returns the scalar loss of one batch, e.g.
            ``lambda m, x: m.forward_kld(x)`` (normflows) or ``-m.log_prob(x).mean()``.
        data: a tensor ``(N, ...)`` (shuffled into batches of ``batch_size``
            each epoch) or any re-iterable of batches, e.g. a DataLoader.
        epochs: passes over ``data`` (in total, counting resumed ones).
        batch_size: mini-batch size when ``data`` is a tensor.
        optimizer: defaults to Adam with learning rate ``lr``.
        lr: learning rate of the default optimizer.
        scheduler: optional LR scheduler, stepped after every optimisation step.
        device: ``"auto" | "cpu" | "cuda" | "mps"``.
        max_grad_norm: clip the gradient norm to this value if given.
        max_seconds: stop after this much training time (checked after each
            step); time spent in ``eval_fn``, saving and ``on_epoch_end`` does
            not count, and ``History.seconds`` records training time only.
        eval_fn: called with the model in eval mode after each epoch; its value
            is recorded in ``History.eval`` (e.g. a held-out NLL).
        checkpoint: file to save to after each epoch (atomically) and, if
            ``resume`` and it exists, to resume from. It holds the model, the
            optimizer, the scheduler, the history and the batch-order generator,
            so a resumed run sees the batches an uninterrupted one would.
        resume: whether to continue from ``checkpoint`` when it exists.
        progress: show a tqdm bar; default: only when interactive.
        seed: seeds the batch order.
        extra_state: small metadata stored in the checkpoint (e.g. the model's
            hyper-parameters), so a loader can rebuild the model.
        steps_per_epoch: with tensor ``data``, make each epoch this many
            batches instead of one pass (evaluation and checkpoints then come
            at this rhythm).
        on_epoch_end: called with the history after each epoch, e.g. to redraw
            a live loss curve.

    Returns:
        The :class:`History`. If a loss or gradient becomes NaN/inf, training
        stops, the model and optimizer are restored to the last good state,
        ``History.stopped`` says so and a warning is issued.
    """
    dev = resolve_device(device)
    model.to(dev)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = History()
    generator = torch.Generator().manual_seed(seed)
    start_epoch = 0
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, map_location=dev)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
        history = History.from_state_dict(state["history"])
        start_epoch = len(history.epoch_loss)
        if "generator" in state:  # the batch order continues as if never interrupted
            generator.set_state(state["generator"].cpu())
        else:  # a checkpoint from before the generator was saved
            generator.manual_seed(seed + start_epoch)

    def snapshot() -> dict[str, Any]:
        return {
            "model": copy.deepcopy(model.state_dict()),
            "optimizer": copy.deepcopy(optimizer.state_dict()),
        }

    def save() -> None:
        if checkpoint is None:
            return
        state = {
            **snapshot(),
            "history": history.state_dict(),
            "extra": extra_state or {},
            "generator": generator.get_state(),
        }
        if scheduler is not None:
            state["scheduler"] = scheduler.state_dict()
        save_checkpoint(checkpoint, state)

    last_good = snapshot()
    show = _interactive() if progress is None else progress
    elapsed = history.seconds[-1] if history.seconds else 0.0
    if max_seconds is not None and elapsed >= max_seconds:  # a resumed run already done
        history.stopped = f"time budget of {max_seconds:g} s already used by the checkpoint"
        model.eval()
        return history
    t0 = time.perf_counter() - elapsed
    out_of_time = False
    for epoch in range(start_epoch, epochs):
        model.train()
        total, count = 0.0, 0
        bar = tqdm(
            _batches(data, batch_size, generator, steps_per_epoch),
            desc=f"epoch {epoch + 1}" + (f"/{epochs}" if epochs < 10**6 else ""),
            disable=not show,
            leave=False,
            total=(steps_per_epoch or math.ceil(len(data) / batch_size))
            if isinstance(data, torch.Tensor)
            else None,
        )
        for batch in bar:
            loss = loss_fn(model, _to(batch, dev))
            bad = not torch.isfinite(loss)
            if not bad:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                bad = not _finite_grads(model)
            if bad:
                model.load_state_dict(last_good["model"])
                optimizer.load_state_dict(last_good["optimizer"])
                value = float(loss.detach())
                what = (
                    f"the loss became {value:.4g}"
                    if not math.isfinite(value)
                    else f"a gradient became NaN/inf (loss {value:.4g})"
                )
                history.stopped = (
                    f"stopped at step {history.steps + 1}: {what}; "
                    f"restored the last good state (end of epoch {epoch})"
                )
                warnings.warn(history.stopped, RuntimeWarning, stacklevel=2)
                bar.close()
                model.eval()  # as after a normal end
                return history
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            value = float(loss.detach())
            history.step_loss.append(value)
            history.steps += 1
            total, count = total + value, count + 1
            bar.set_postfix(loss=f"{value:.3f}")
            if max_seconds is not None and time.perf_counter() - t0 >= max_seconds:
                out_of_time = True
                break
        bar.close()
        if count == 0:
            raise ValueError("data yielded no batch; is it empty?")
        history.epoch_loss.append(total / count)
        history.seconds.append(time.perf_counter() - t0)
        paused = time.perf_counter()  # evaluation and saving are not training time
        if eval_fn is not None:
            model.eval()
            with torch.no_grad():
                history.eval.append(float(eval_fn(model)))
        last_good = snapshot()
        save()
        if on_epoch_end is not None:
            on_epoch_end(history)
        t0 += time.perf_counter() - paused
        if out_of_time:
            history.stopped = f"time budget of {max_seconds:g} s reached in epoch {epoch + 1}"
            break
    model.eval()
    return history


# --------------------------------------------------------------- Glow recipe


def glow_checkpoint_path(dataset: str, recipe: dict, tag: str = "") -> Path:
    """Default checkpoint file of a Glow run, in ``<cache>/checkpoints/``.

    The name carries a short hash of the recipe, so a changed recipe never
    resumes from (or overwrites) a checkpoint of another architecture.

    Args:
        dataset: the dataset name.
        recipe: the recipe dict.
        tag: an optional suffix, e.g. ``"fast"`` for fast-mode runs.
    """
    import hashlib
    import json

    from course_utils import config

    digest = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]
    name = f"glow-{dataset}-{digest}" + (f"-{tag}" if tag else "")
    return config.cache_dir() / "checkpoints" / f"{name}.pt"


def train_glow(
    dataset: str = "mnist",
    minutes: float = 5.0,
    recipe: str | dict = "course",
    device: str = "auto",
    checkpoint: str | os.PathLike | None = None,
    resume: bool = True,
    eval_images: int = 1000,
    steps_per_epoch: int = 100,
    progress: bool | None = None,
    seed: int = 0,
    on_epoch_end: Callable[[History], None] | None = None,
):
    """Train a :class:`course_utils.models.Glow` for a wall-clock budget.

    Batches are dequantized afresh at every step (``u = (k + v) / 256``); the
    held-out bits/dim is measured after every ``steps_per_epoch`` steps on the
    first ``eval_images`` test images with a fixed dequantization noise.

    Args:
        dataset: one of :data:`course_utils.data.IMAGE_DATASETS`.
        minutes: total training minutes (a resumed run counts earlier ones).
        recipe: ``"course"``, ``"reference"`` or a recipe dict (see
            :data:`course_utils.models.COURSE_RECIPE`).
        device: ``"auto" | "cpu" | "cuda" | "mps"``.
        checkpoint: file; default :func:`glow_checkpoint_path` of the dataset and recipe.
        resume: continue from the checkpoint if it exists.
        eval_images: held-out images for the bits/dim curve.
        steps_per_epoch: steps between evaluations and checkpoints.
        progress: progress bar; default only when interactive.
        seed: seeds the model's initialisation and the batch order.
        on_epoch_end: called with the history after each evaluation.

    Returns:
        ``(model, history)``; ``history.eval`` is the held-out bits/dim curve
        and ``history.seconds`` the training time at each point.
    """
    from course_utils.config import seed_everything
    from course_utils.data import image_splits
    from course_utils.models import (
        RECIPES,
        Glow,
        dequantize,
        glow_checkpoint_state,
        make_optimizer,
    )

    if isinstance(recipe, str) and recipe not in RECIPES:
        raise ValueError(
            f"unknown recipe {recipe!r}; choose one of {sorted(RECIPES)} or pass a dict"
        )
    name = recipe if isinstance(recipe, str) else "custom"
    spec = RECIPES[recipe] if isinstance(recipe, str) else recipe
    train_images, test_images = image_splits(dataset)
    seed_everything(seed)
    model = Glow(**spec["model"])
    dev = resolve_device(device)
    model.to(dev)
    optimizer, scheduler = make_optimizer(model, spec)
    held_out = dequantize(test_images[:eval_images], torch.Generator().manual_seed(1)).to(dev)

    history = train(
        model,
        lambda m, k: m.forward_kld(dequantize(k)),
        train_images,
        epochs=10**9,  # the time budget ends the run
        batch_size=spec["batch_size"],
        optimizer=optimizer,
        scheduler=scheduler,
        device=dev,
        max_seconds=minutes * 60,
        eval_fn=lambda m: m.bits_per_dim(held_out),
        checkpoint=checkpoint or glow_checkpoint_path(dataset, spec),
        resume=resume,
        progress=progress,
        seed=seed,
        extra_state={**glow_checkpoint_state(model), "dataset": dataset, "recipe": name},
        steps_per_epoch=steps_per_epoch,
        on_epoch_end=on_epoch_end,
    )
    return model, history


def main(argv: list[str] | None = None) -> int:
    """``python -m course_utils.train glow --dataset mnist --minutes 5 --device auto``."""
    import argparse

    from course_utils.data import IMAGE_DATASETS

    parser = argparse.ArgumentParser(prog="python -m course_utils.train")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("glow", help="train the multi-scale Glow of lesson 07")
    g.add_argument("--dataset", choices=IMAGE_DATASETS, default="mnist")
    g.add_argument("--minutes", type=float, default=5.0, help="total training minutes")
    g.add_argument("--recipe", choices=["course", "reference", "full"], default="course")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    g.add_argument("--checkpoint", default=None, help="default: <cache>/checkpoints/...")
    g.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    g.add_argument("--steps-per-epoch", type=int, default=100)
    g.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    _, history = train_glow(
        dataset=args.dataset,
        minutes=args.minutes,
        recipe=args.recipe,
        device=args.device,
        checkpoint=args.checkpoint,
        resume=not args.fresh,
        steps_per_epoch=args.steps_per_epoch,
        progress=False,  # one line per evaluation instead
        seed=args.seed,
        on_epoch_end=lambda h: print(
            f"step {h.steps:6d}  {h.seconds[-1]:7.1f} s  train NLL {h.epoch_loss[-1]:9.1f}  "
            f"held-out {h.eval[-1]:.3f} bits/dim",
            flush=True,
        ),
    )
    if history.stopped:
        print(history.stopped)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
