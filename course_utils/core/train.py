"""One training loop for every flow in the course.

``train`` minimises ``loss_fn(model, batch)`` over mini-batches and takes care
of the chores every lesson needs: a progress bar (silent when nobody watches),
the loss history, a NaN/inf guard, atomic checkpoints, resuming, a wall-clock
budget and the choice of device.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from course_utils.core import distributed
from course_utils.core.checkpoints import (
    CheckpointMismatchError,
    _keep_previous,
    _real_path,
    check_checkpoint,
    checkpoint_lock,
    checkpoint_safe,
    load_checkpoint,
    save_checkpoint,
)
from course_utils.core.checks import check_float, check_int

__all__ = [
    "resolve_device",
    "History",
    "train",
]

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
        from IPython import get_ipython  # optional: a script may run without IPython

        if get_ipython() is not None:
            return True
    except ImportError:
        pass
    return sys.stderr.isatty()


@dataclass
class History:
    """What a training run recorded.

    Attributes:
        step_loss: the loss of every optimisation step.
        epoch_loss: the mean training loss of each epoch.
        eval: the value of ``eval_fn`` after each epoch (empty without one).
        seconds: wall-clock seconds of training at the end of each epoch.
        epoch_steps: the step count at the end of each epoch (where ``eval``'s
            values were measured).
        steps: optimisation steps taken in total (resumed runs included).
        stopped: why training ended early (``""`` if it did not).
    """

    step_loss: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)
    eval: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    epoch_steps: list[int] = field(default_factory=list)
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


def _finite_grads(params: list[nn.Parameter]) -> bool:
    # One check over all gradients at once: small models have dozens of small
    # tensors, and a check per tensor costs as much as Adam's step.
    grads = [p.grad.reshape(-1) for p in params if p.grad is not None]
    return not grads or bool(torch.isfinite(torch.cat(grads)).all())


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
        epochs: passes over ``data`` (in total, counting resumed ones), >= 0; a
            checkpoint that already holds more epochs is refused, not returned.
        batch_size: mini-batch size when ``data`` is a tensor, >= 1.
        optimizer: defaults to Adam with learning rate ``lr``; one that updates
            none of the model's trainable parameters is refused.
        lr: learning rate of the default optimizer.
        scheduler: optional LR scheduler, stepped after every optimisation step.
        device: ``"auto" | "cpu" | "cuda" | "mps"``.
        max_grad_norm: clip the gradient norm to this value (> 0) if given.
        max_seconds: stop after this much training time (> 0; checked after each
            step); time spent in ``eval_fn``, saving and ``on_epoch_end`` does
            not count, and ``History.seconds`` records training time only.
        eval_fn: called with the model in eval mode after each epoch; its value
            is recorded in ``History.eval`` (e.g. a held-out NLL), with a
            warning when it is NaN or infinite.
        checkpoint: file to save to after each epoch (atomically) and, if
            ``resume`` and it exists, to resume from. It holds the model, the
            optimizer, the scheduler, the history and the batch-order generator,
            so a resumed run sees the batches an uninterrupted one would. While
            the run lasts, ``<checkpoint>.lock`` keeps a second run from
            writing the same file (see :func:`checkpoint_lock`); the path is
            checked to be writable before training starts.
        resume: whether to continue from ``checkpoint`` when it exists. A
            checkpoint of another run (other ``extra_state`` values such as the
            dataset, another architecture or optimizer) is refused with the
            list of differences; so is one of other tensor ``data`` or another
            ``batch_size`` (the checkpoint records their fingerprint), and a
            file without optimizer state (a shipped model's weights). With
            ``resume=False`` an existing checkpoint
            is kept: it is renamed to the first free ``<name>.N<suffix>``
            (``run.pt`` -> ``run.1.pt``) when the new run first saves, with a
            warning that says so.
        progress: show a tqdm bar; default: only when interactive.
        seed: seeds the batch order.
        extra_state: small metadata stored in the checkpoint (e.g. the model's
            hyper-parameters), so a loader can rebuild the model; numpy scalars
            and paths are converted (:func:`checkpoint_safe`), anything a
            checkpoint cannot hold is refused before training.
        steps_per_epoch: with tensor ``data``, make each epoch this many
            batches instead of one pass (evaluation and checkpoints then come
            at this rhythm).
        on_epoch_end: called with the history after each epoch, e.g. to redraw
            a live loss curve.

    Returns:
        The :class:`History`. If a loss or gradient becomes NaN/inf, training
        stops, the model, optimizer, scheduler and history are restored to the
        last good state (the end of the previous epoch), ``History.stopped``
        says so and a warning is issued.

    Raises:
        ValueError: a setting is out of range, ``data`` is empty or of another
            float dtype than the model, ``loss_fn`` returns no scalar, or the
            checkpoint path is a directory, ``optimizer`` updates none of the
            model's parameters, or the checkpoint holds more than ``epochs``.
        CheckpointMismatchError: the checkpoint belongs to another run.
        CheckpointBusyError: another run is writing the checkpoint.

    Under ``torchrun``, the checkpoint's checks and lock are rank 0's; a
    refusal there is raised on every rank, with the same message, before any
    of them trains (:func:`course_utils.core.distributed.decided_on_main`).
    """
    epochs = check_int("epochs", epochs, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    lr = check_float("lr", lr, positive=True)
    seed = check_int("seed", seed)
    if max_grad_norm is not None:
        max_grad_norm = check_float("max_grad_norm", max_grad_norm, positive=True)
    if max_seconds is not None:
        max_seconds = check_float("max_seconds", max_seconds, positive=True)
    if steps_per_epoch is not None:
        steps_per_epoch = check_int("steps_per_epoch", steps_per_epoch, minimum=1)
    extra_state = checkpoint_safe(extra_state or {}, "extra_state")
    if isinstance(data, torch.Tensor):
        if len(data) == 0:
            raise ValueError("data is empty: it yields no batch to train on")
        _check_dtype(data, model, "data")
    settings = dict(
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        scheduler=scheduler,
        device=device,
        max_grad_norm=max_grad_norm,
        max_seconds=max_seconds,
        eval_fn=eval_fn,
        checkpoint=checkpoint,
        resume=resume,
        progress=progress,
        seed=seed,
        extra_state=extra_state,
        steps_per_epoch=steps_per_epoch,
        on_epoch_end=on_epoch_end,
    )
    if optimizer is not None:
        _check_optimizer(optimizer, model)
    if distributed.world()[1] > 1 and not isinstance(data, torch.Tensor):
        raise ValueError(
            "training on several processes needs data as one tensor, which each process "
            "shards; got an iterable of batches"
        )
    if checkpoint is None:
        return _train(model, loss_fn, data, **settings)

    def writable() -> None:
        if Path(checkpoint).is_dir():
            raise ValueError(
                f"checkpoint {checkpoint} is a directory; give a file path such as "
                f"{Path(checkpoint) / 'run.pt'}"
            )
        target = _real_path(checkpoint)
        if target.exists() and not os.access(target, os.W_OK):
            raise PermissionError(
                f"cannot write the checkpoint {checkpoint}: the file is read-only; "
                "make it writable or choose another path"
            )

    # Only rank 0 writes, and locks; under torchrun every rank learns whether it could
    # before any of them starts (a refusal would otherwise leave the others inside DDP).
    with distributed.decided_on_main(lambda: checkpoint_lock(checkpoint), writable):
        return _train(model, loss_fn, data, **settings)


def _check_optimizer(optimizer: Any, model: nn.Module) -> None:
    """Refuse an optimizer that would update none of ``model``'s trainable parameters."""
    groups = getattr(optimizer, "param_groups", None)
    if not isinstance(groups, list):
        raise ValueError(f"optimizer must be a torch optimizer, got {type(optimizer).__name__}")
    mine = {id(p) for p in model.parameters() if p.requires_grad}
    if not any(id(p) in mine for group in groups for p in group["params"]):
        raise ValueError(
            f"optimizer ({type(optimizer).__name__}) updates none of the model's trainable "
            "parameters, so training would change nothing: was it built for another model? "
            "Build it from this one, e.g. torch.optim.Adam(model.parameters(), lr=1e-3)"
        )


def _fingerprint(data: Any, batch_size: int) -> dict[str, Any]:
    """What a checkpoint records of the run's data and batch size, to refuse another on resume.

    Only for tensor data (an iterable of batches cannot be read twice to be
    hashed): its shape, dtype and a digest of its bytes.
    """
    if not isinstance(data, torch.Tensor):
        return {}
    raw = data.detach().cpu().contiguous().flatten().view(torch.uint8).numpy()
    digest = hashlib.blake2b(raw.data, digest_size=16).hexdigest()
    return {
        "data": {
            "shape": list(data.shape),
            "dtype": str(data.dtype).removeprefix("torch."),
            "digest": digest,
        },
        "batch_size": batch_size,
    }


def _check_dtype(batch: Any, model: nn.Module, name: str) -> None:
    """A float batch must have a float dtype of the model (torch fails deep inside otherwise).

    A model may mix dtypes (e.g. a float64 base distribution under float32
    layers); a batch of any of its dtypes is accepted.
    """
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    parts = batch if isinstance(batch, (list, tuple)) else [batch]
    for t in (b for b in parts if isinstance(b, torch.Tensor)):
        if dtypes and t.is_floating_point() and t.dtype not in dtypes:
            have = " / ".join(sorted(str(d).removeprefix("torch.") for d in dtypes))
            raise ValueError(
                f"{name} is {str(t.dtype).removeprefix('torch.')} but the model's parameters "
                f"are {have}; convert one of them (e.g. data.float())"
            )


def _batch_size_of(batch: Any) -> int | None:
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.ndim else None
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return _batch_size_of(batch[0])
    return None


def _train(
    model: nn.Module,
    loss_fn: LossFn,
    data: torch.Tensor | Iterable[Any],
    *,
    epochs: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer | None,
    lr: float,
    scheduler: Any | None,
    device: str | torch.device,
    max_grad_norm: float | None,
    max_seconds: float | None,
    eval_fn: Callable[[nn.Module], float] | None,
    checkpoint: str | os.PathLike | None,
    resume: bool,
    progress: bool | None,
    seed: int,
    extra_state: dict[str, Any],
    steps_per_epoch: int | None,
    on_epoch_end: Callable[[History], None] | None,
) -> History:
    """The loop of :func:`train`, on checked settings (and under the checkpoint's lock)."""
    dev = resolve_device(device)
    model.to(dev)
    if optimizer is None:
        # foreach: the default loop's numbers, bit for bit, in fewer kernel calls
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    params = list(model.parameters())  # walked once, not at every step
    history = History()
    generator = torch.Generator().manual_seed(seed)
    start_epoch = 0
    keep_previous = checkpoint is not None and not resume and Path(checkpoint).is_file()
    run = _fingerprint(data, batch_size) if checkpoint is not None else {}
    if checkpoint is not None and resume and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, map_location=dev)
        if "optimizer" not in state or "history" not in state:
            raise CheckpointMismatchError(
                f"{checkpoint} holds no optimizer state or history (a model's weights only, "
                "such as a shipped model): it cannot be resumed. Load it as a model instead, "
                "or give this run another checkpoint path"
            )
        check_checkpoint(
            checkpoint,
            state,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            extra=extra_state,
            run=run,
        )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
        history = History.from_state_dict(state["history"])
        start_epoch = len(history.epoch_loss)
        if start_epoch > epochs:
            raise ValueError(
                f"epochs={epochs}, but the checkpoint {checkpoint} already holds "
                f"{start_epoch} epochs: resuming cannot train less than it has. Ask for "
                f"epochs >= {start_epoch} to continue it, or start over with resume=False "
                "(the old file is kept aside)"
            )
        if "generator" in state:  # the batch order continues as if never interrupted
            generator.set_state(state["generator"].cpu())
        else:  # a checkpoint from before the generator was saved
            generator.manual_seed(seed + start_epoch)

    def snapshot() -> dict[str, Any]:
        """What the NaN guard rolls back to: every piece of state a step changes."""
        return {
            "model": copy.deepcopy(model.state_dict()),
            "optimizer": copy.deepcopy(optimizer.state_dict()),
            "scheduler": copy.deepcopy(scheduler.state_dict()) if scheduler is not None else None,
            "steps": history.steps,
        }

    def restore(good: dict[str, Any]) -> None:
        model.load_state_dict(good["model"])
        optimizer.load_state_dict(good["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(good["scheduler"])
        del history.step_loss[len(history.step_loss) - (history.steps - good["steps"]) :]
        history.steps = good["steps"]

    def save() -> None:
        nonlocal keep_previous
        if checkpoint is None or not distributed.is_main():
            return
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "optimizer_type": type(optimizer).__name__,
            "scheduler_type": type(scheduler).__name__ if scheduler is not None else None,
            "history": history.state_dict(),
            "extra": extra_state,
            "run": run,
            "generator": generator.get_state(),
        }
        if scheduler is not None:
            state["scheduler"] = scheduler.state_dict()
        state = checkpoint_safe(state)  # refused before the old file is moved aside
        if keep_previous and _real_path(checkpoint).is_file():
            backup = _keep_previous(_real_path(checkpoint))
            warnings.warn(
                f"resume=False: kept the previous checkpoint as {backup}", UserWarning, stacklevel=4
            )
        keep_previous = False
        save_checkpoint(checkpoint, state)

    last_good = snapshot()
    show = _interactive() if progress is None else progress
    elapsed = history.seconds[-1] if history.seconds else 0.0
    if max_seconds is not None and start_epoch > 0 and elapsed >= max_seconds:
        history.stopped = f"time budget of {max_seconds:g} s already used by the checkpoint"
        model.eval()
        return history
    t0 = time.perf_counter() - elapsed
    out_of_time = False
    ranks = distributed.world()[1]
    step_loss = distributed.wrap(model, loss_fn, dev)
    for epoch in range(start_epoch, epochs):
        model.train()
        total, count = 0.0, 0
        batches = _batches(data, batch_size * ranks, generator, steps_per_epoch)
        if ranks > 1:  # one global batch per step; each rank trains on its own slice
            batches = (distributed.shard(b) for b in batches)
        bar = tqdm(
            batches,
            desc=f"epoch {epoch + 1}" + (f"/{epochs}" if epochs < 10**6 else ""),
            disable=not show or not distributed.is_main(),
            leave=False,
            total=(steps_per_epoch or math.ceil(len(data) / batch_size))
            if isinstance(data, torch.Tensor)
            else None,
        )
        for index, batch in enumerate(bar):
            if _batch_size_of(batch) == 0:
                raise ValueError(f"batch {index + 1} of data is empty")
            if not isinstance(data, torch.Tensor):
                _check_dtype(batch, model, "data")
            loss = step_loss(_to(batch, dev))
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                raise ValueError(
                    f"loss_fn must return a scalar tensor (one number), got {got}; "
                    "e.g. average the per-example losses with .mean()"
                )
            bad = distributed.any_rank(not torch.isfinite(loss), dev)
            if not bad:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                bad = distributed.any_rank(not _finite_grads(params), dev)
            if bad:
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
                restore(last_good)
                warnings.warn(history.stopped, RuntimeWarning, stacklevel=3)
                bar.close()
                model.eval()  # as after a normal end
                return history
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            value = float(loss.detach())
            history.step_loss.append(value)
            history.steps += 1
            total, count = total + value, count + 1
            bar.set_postfix(loss=f"{value:.3f}")
            if max_seconds is not None and distributed.any_rank(
                time.perf_counter() - t0 >= max_seconds, dev
            ):
                out_of_time = True
                break
        bar.close()
        if count == 0:
            raise ValueError("data yielded no batch; is it empty?")
        history.epoch_loss.append(distributed.mean_over_ranks(total / count, dev))
        history.seconds.append(distributed.from_main(time.perf_counter() - t0, dev))
        history.epoch_steps.append(history.steps)
        paused = time.perf_counter()  # evaluation and saving are not training time
        if eval_fn is not None:
            value = 0.0
            if distributed.is_main():  # rank 0 evaluates; the others receive its value
                model.eval()
                with torch.no_grad():
                    value = float(eval_fn(model))
            value = distributed.from_main(value, dev)
            if not math.isfinite(value) and distributed.is_main():
                warnings.warn(
                    f"eval_fn returned {value} after epoch {epoch + 1} (step {history.steps}): "
                    "the model or the evaluation has gone wrong; it is recorded as such",
                    RuntimeWarning,
                    stacklevel=3,
                )
            history.eval.append(value)
        last_good = snapshot()
        save()
        if on_epoch_end is not None and distributed.is_main():
            on_epoch_end(history)
        t0 += time.perf_counter() - paused
        if out_of_time:
            history.stopped = f"time budget of {max_seconds:g} s reached in epoch {epoch + 1}"
            break
    model.eval()
    return history
