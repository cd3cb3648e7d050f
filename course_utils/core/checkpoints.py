"""Checkpoints every training run of the course writes and reads.

A checkpoint is a dict of tensors and plain values saved with ``torch.save``
and read back with ``torch.load(weights_only=True)``, so loading one can never
run code. :func:`save_checkpoint` writes atomically (a temporary file, then a
rename), :func:`checkpoint_lock` keeps two runs from writing the same file, and
:func:`check_checkpoint` refuses, with a message that says what differs, a
checkpoint that belongs to another run.
"""

from __future__ import annotations

import glob
import os
import secrets
import stat
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "CheckpointBusyError",
    "CheckpointMismatchError",
    "checkpoint_safe",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_lock",
    "checkpoint_differences",
    "check_checkpoint",
]


class CheckpointBusyError(RuntimeError):
    """Another run is writing the same checkpoint; the message names its process."""


class CheckpointMismatchError(ValueError):
    """A checkpoint belongs to another run (dataset, recipe, model or optimizer differ)."""


# What ``torch.load(weights_only=True)`` reads back; anything else is converted or refused.
_SAFE_LEAVES = (type(None), bool, int, float, complex, str, bytes, torch.dtype, torch.device)


def checkpoint_safe(value: Any, where: str = "state") -> Any:
    """A copy of ``value`` that :func:`load_checkpoint` can read back, or a clear refusal.

    ``torch.load(weights_only=True)`` refuses to unpickle anything but tensors,
    plain Python values and containers of them, so a numpy scalar (e.g. a
    learning rate from ``np.logspace``) or a ``Path`` in a saved state would
    make the checkpoint unreadable on resume. These are converted here, before
    saving: numpy scalars to Python numbers, numpy arrays to tensors, paths to
    strings, tuple subclasses (named tuples) to tuples, frozensets to sets.

    Args:
        value: the state to save.
        where: how the state is called in error messages.

    Returns:
        The converted copy (tensors are shared, not copied).

    Raises:
        ValueError: something in it cannot be stored; the message gives its place.

    >>> import numpy as np
    >>> checkpoint_safe({"lr": np.float64(0.5), "sizes": (np.int64(2),)})
    {'lr': 0.5, 'sizes': (2,)}
    """
    if isinstance(value, torch.Tensor) or type(value) in _SAFE_LEAVES or type(value) is torch.Size:
        return value
    if isinstance(value, np.generic):
        return checkpoint_safe(value.item(), where)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise ValueError(f"{where} is a numpy array of Python objects; it cannot be stored")
        return torch.from_numpy(np.array(value))
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    for base in (bool, int, float, complex, str, bytes):  # e.g. an IntEnum
        if isinstance(value, base):
            return base(value)
    if isinstance(value, dict):
        out = {
            checkpoint_safe(k, f"a key of {where}"): checkpoint_safe(v, f"{where}[{k!r}]")
            for k, v in value.items()
        }
        return type(value)(out) if type(value) in (dict, OrderedDict) else out
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [checkpoint_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
        plain = {list: list, tuple: tuple, set: set, frozenset: set}
        return next(k for t, k in plain.items() if isinstance(value, t))(items)
    kind = "function" if hasattr(value, "__code__") else type(value).__name__
    what = ("an " if kind[0].lower() in "aeiou" else "a ") + kind
    raise ValueError(
        f"{where} is {what}; a checkpoint holds only tensors, numbers, strings, "
        "lists, tuples and dicts (convert it, e.g. to a string, before saving)"
    )


def _real_path(path: str | os.PathLike) -> Path:
    """The file a checkpoint path names: a symlink's target, so the link stays a link."""
    return Path(os.path.realpath(Path(path).expanduser()))


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` with ``torch.save`` atomically (temporary file + rename).

    A crash while writing leaves the previous checkpoint intact, never a
    half-written file under the final name. A symlink is written through (the
    link stays, its target is replaced); an existing file keeps its permission
    bits, a new one gets those of any new file (the umask's).

    Args:
        path: where to write.
        state: tensors, state dicts, numbers, strings, lists and dicts; numpy
            scalars and paths are converted by :func:`checkpoint_safe`, so that
            :func:`load_checkpoint` can read it with ``weights_only=True``.

    Returns:
        The path written.

    Raises:
        ValueError: ``state`` holds something a checkpoint cannot store.
    """
    state = checkpoint_safe(state)
    path = Path(path)
    target = _real_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        if target.exists():
            os.chmod(tmp, stat.S_IMODE(target.stat().st_mode))
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
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


def _lock_owner(lock: Path) -> int | None:
    try:
        return int(lock.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would end the process there; the message says how to unlock
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


@contextmanager
def checkpoint_lock(path: str | os.PathLike) -> Iterator[Path]:
    """Hold ``<checkpoint>.lock`` while a run writes ``path``; refuse a second writer.

    The lock file, created atomically (``O_CREAT | O_EXCL``) next to the
    checkpoint, holds the writer's process id and is removed on exit. A lock
    whose process is gone (a run killed with ``kill -9``) is stale and taken
    over. While the lock is held no other run writes here, so temporary files
    that killed runs left beside the checkpoint are removed.

    Args:
        path: the checkpoint file (a symlink is followed).

    Yields:
        The lock file's path.

    Raises:
        CheckpointBusyError: a live process holds the lock.
        OSError: the checkpoint's folder cannot be written (e.g. PermissionError).
    """
    target = _real_path(path)
    lock = target.with_name(f"{target.name}.lock")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                pid = _lock_owner(lock)
                young = time.time() - _mtime(lock) < 60
                if (pid is not None and _alive(pid)) or (pid is None and young):
                    who = "this process" if pid == os.getpid() else "another process"
                    raise CheckpointBusyError(
                        f"{path} is being written by {who} (process {pid or 'starting'}): "
                        "two runs on one checkpoint would overwrite each other's steps. "
                        "Wait for that run to end, or give this one another checkpoint path; "
                        f"if no such run exists, delete {lock}"
                    ) from None
                lock.unlink(missing_ok=True)  # its writer is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(f"{os.getpid()}\n")
            break
        else:
            raise CheckpointBusyError(
                f"could not take the lock {lock}; delete it if no run uses it"
            )
    except OSError as err:  # no permission, a read-only file system, a file for a folder
        raise type(err)(
            f"cannot write the checkpoint {path}: {err.strerror or err} in {target.parent}; "
            "choose a writable path"
        ) from err
    try:
        for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            leftover.unlink(missing_ok=True)
        yield lock
    finally:
        if _lock_owner(lock) == os.getpid():
            lock.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _keep_previous(path: Path) -> Path:
    """Rename ``name.pt`` to the first free ``name.N.pt`` and return that path."""
    n = 1
    while (backup := path.with_name(f"{path.stem}.{n}{path.suffix}")).exists():
        n += 1
    os.replace(path, backup)
    return backup


def _same(a: Any, b: Any) -> bool:
    """Equality of saved metadata, tensors included (``==`` on them is elementwise)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and torch.equal(a.cpu(), b.cpu())
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _shorten(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _examples(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _describe_run(value: Any) -> str:
    """A fingerprint of data (see :func:`course_utils.core.train.train`) or a plain value."""
    if isinstance(value, dict) and {"shape", "dtype", "digest"} <= value.keys():
        shape = " × ".join(str(v) for v in value["shape"])
        return f"{shape} {value['dtype']} (digest {value['digest'][:12]})"
    return _shorten(value)


def checkpoint_differences(
    state: dict[str, Any],
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    extra: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
) -> list[str]:
    """What keeps ``state`` from resuming into this run, one short line per difference.

    Compared, where given: the ``extra`` metadata both sides have (e.g. the
    dataset, the recipe, the model's configuration), what the training loop
    records of the run itself (``run``: the data's fingerprint and the batch
    size, where the checkpoint has them), the model's parameter names and
    shapes, the optimizer's type and, with an optimizer, the scheduler's.

    Returns:
        An empty list when the checkpoint fits.
    """
    out: list[str] = []
    if extra:
        saved = state.get("extra", {})
        for key, value in checkpoint_safe(extra, "extra_state").items():
            if key in saved and not _same(saved[key], value):
                out.append(f"{key}: saved {_shorten(saved[key])}, here {_shorten(value)}")
    if run:
        saved = state.get("run", {})
        for key, value in checkpoint_safe(run, "run").items():
            if key in saved and not _same(saved[key], value):
                out.append(f"{key}: saved {_describe_run(saved[key])}, here {_describe_run(value)}")
    if model is not None:
        if "model" not in state:
            return [*out, "model: the checkpoint holds no model state"]
        saved, here = state["model"], model.state_dict()
        missing = [k for k in here if k not in saved]
        unexpected = [k for k in saved if k not in here]
        reshaped = [
            f"{k} saved {tuple(saved[k].shape)}, here {tuple(here[k].shape)}"
            for k in here
            if k in saved and hasattr(saved[k], "shape") and saved[k].shape != here[k].shape
        ]
        if missing or unexpected or reshaped:
            parts = [
                f"{len(missing)} missing ({_examples(missing)})" if missing else "",
                f"{len(unexpected)} unexpected ({_examples(unexpected)})" if unexpected else "",
                f"{len(reshaped)} of another shape ({_examples(reshaped, 2)})" if reshaped else "",
            ]
            out.append("model: another architecture: " + "; ".join(p for p in parts if p))
    if optimizer is not None:
        kind = type(optimizer).__name__
        saved_kind = state.get("optimizer_type")
        if saved_kind is not None and saved_kind != kind:
            out.append(f"optimizer: saved {saved_kind}, here {kind}")
        elif saved_kind is None and state.get("optimizer", {}).get("param_groups"):
            # An older checkpoint: settings the optimizer does not know betray another type.
            known = set(optimizer.defaults) | {"params", "initial_lr"}
            foreign = sorted(set(state["optimizer"]["param_groups"][0]) - known)
            if foreign:
                out.append(
                    f"optimizer: saved settings {_examples([repr(f) for f in foreign])}, "
                    f"which {kind} does not have"
                )
    if optimizer is not None and (scheduler is not None or "scheduler_type" in state):
        kind = type(scheduler).__name__ if scheduler is not None else None
        saved_kind = state.get("scheduler_type", kind if "scheduler" in state else None)
        if saved_kind != kind:
            out.append(f"scheduler: saved {saved_kind}, here {kind}")
    return out


def check_checkpoint(path: str | os.PathLike, state: dict[str, Any], **compare: Any) -> None:
    """Raise :class:`CheckpointMismatchError` listing :func:`checkpoint_differences`, if any.

    Args:
        path: the checkpoint's file, for the message.
        state: its contents.
        **compare: ``model``, ``optimizer``, ``scheduler``, ``extra`` of this run.
    """
    differences = checkpoint_differences(state, **compare)
    if differences:
        raise CheckpointMismatchError(
            f"{path} belongs to another run, so it cannot be resumed here:\n  - "
            + "\n  - ".join(differences)
            + "\nGive this run another checkpoint path, or start over with resume=False "
            "(--fresh), which keeps the old file aside."
        )


# ------------------------------------------------------------------ history
