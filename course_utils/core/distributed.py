"""Training on several processes with ``torch.distributed`` (one per GPU, or per CPU core).

Launch any course training command under ``torchrun``, e.g.::

    torchrun --standalone --nproc_per_node 2 -m course_utils.glow --dataset mnist

``torchrun`` starts the processes and sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; :func:`setup` then joins them into one process group (``nccl``
on GPUs, ``gloo`` on CPUs). :func:`course_utils.core.train.train` wraps the model in
``DistributedDataParallel``: every process draws the same shuffled order and
takes its own slice of each global batch, so the ranks see different images
and average their gradients. Each process trains on ``batch_size`` images a
step, so a step of W processes sees W × ``batch_size`` images. Rank 0 alone
evaluates, writes checkpoints and prints; the others receive its evaluation.
A checkpoint holds no trace of the number of processes, so a run resumes
under any number of them.

What only rank 0 can decide (whether the checkpoint's lock is free and its
folder writable) is decided there and told to every rank before any of them
does work together (:func:`decided_on_main`): a refusal stops every process
with the same message, instead of leaving the others to die inside
``DistributedDataParallel`` when rank 0 goes away.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "world",
    "is_main",
    "launched",
    "setup",
    "teardown",
    "RankRefusal",
    "agree",
    "decided_on_main",
    "any_rank",
    "mean_over_ranks",
    "from_main",
    "shard",
    "LossModule",
    "wrap",
]


def world() -> tuple[int, int]:
    """``(rank, world_size)``: ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this process writes checkpoints and prints (rank 0, or the only process)."""
    return world()[0] == 0


def launched() -> bool:
    """Whether ``torchrun`` (or an equivalent launcher) started this process with others."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> torch.device:
    """Join the process group ``torchrun`` prepared, if any; return this rank's device.

    On CUDA each process takes the GPU ``LOCAL_RANK`` and the ``nccl`` backend;
    on a CPU (or MPS) it uses ``gloo``. Outside ``torchrun`` it returns
    ``device`` unchanged.
    """
    if not launched():
        return device
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) are visible: "
                "start at most one process per GPU (--nproc_per_node)"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def teardown() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class RankRefusal(RuntimeError):
    """What a rank raises when rank 0 refused and its error cannot be rebuilt as such."""


def _rebuild(kind: type, message: str) -> BaseException:
    """Rank 0's error as this rank raises it: the same type and message where possible."""
    try:
        error = kind(message)
        if isinstance(error, Exception) and str(error) == message:
            return error
    except Exception:  # a type whose constructor wants other arguments
        pass
    return RankRefusal(f"{kind.__name__} on rank 0: {message}")


def agree(error: BaseException | None) -> None:
    """Raise, on every rank, the error rank 0 had (None: carry on), from rank 0's decision.

    Every rank must call it at the same point. Outside a process group it
    raises ``error`` itself, if any. In a group, rank 0's ``error`` (its type
    and message) is broadcast: rank 0 raises its own, the others the same
    type with the same message (:class:`RankRefusal` if that type cannot be
    rebuilt from a message). What the other ranks pass is ignored.
    """
    if world()[1] == 1:
        if error is not None:
            raise error
        return
    payload = [None if error is None else (type(error), str(error))]
    if not is_main():
        payload = [None]
    dist.broadcast_object_list(payload, src=0)
    if payload[0] is None:
        return
    if is_main():
        raise error
    kind, message = payload[0]
    raise _rebuild(kind, message) from None


@contextmanager
def decided_on_main(
    enter: Callable[[], AbstractContextManager] | None = None,
    check: Callable[[], None] | None = None,
) -> Iterator[None]:
    """Run ``check()``, then enter ``enter()``, on rank 0 alone; every rank learns the outcome.

    For what only the writer may do or know: take the checkpoint's lock
    (held by rank 0 until the block ends), check that its folder is writable.
    If either raises on rank 0, every rank raises it (:func:`agree`) before
    the block starts, so no rank goes on into work the others will not do.
    Outside a process group it is simply ``check()`` then ``enter()``.
    """
    with ExitStack() as stack:
        error = None
        if is_main():
            try:
                if check is not None:
                    check()
                if enter is not None:
                    stack.enter_context(enter())
            except Exception as err:  # told to every rank, then raised
                error = err
        agree(error)
        yield


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any (e.g. "out of time", "loss is NaN")."""
    if world()[1] == 1:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_over_ranks(value: float, device: torch.device) -> float:
    """The mean of ``value`` over the ranks (the value itself without a group)."""
    if world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / world()[1]


def from_main(value: float, device: torch.device) -> float:
    """Rank 0's ``value`` on every rank."""
    if world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This rank's slice of a global batch (rank r of W takes rows r, r + W, r + 2W, ...)."""
    rank, size = world()
    return batch[rank::size]


class LossModule(nn.Module):
    """``forward(batch) = loss_fn(model, batch)``, so ``DistributedDataParallel`` sees the loss.

    DDP synchronises gradients for what its wrapper's ``forward`` computes;
    the course's losses call model methods other than ``forward``
    (``dequantized_log_prob``, ``log_prob``), so the loss itself is the forward.
    """

    def __init__(self, model: nn.Module, loss_fn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


def wrap(model: nn.Module, loss_fn, device: torch.device):
    """A callable ``batch -> loss``: DDP around :class:`LossModule` in a group, else plain."""
    if world()[1] == 1:
        return lambda batch: loss_fn(model, batch)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(LossModule(model, loss_fn), device_ids=ids)
