"""course_utils.core.train: device choice, NaN guard, checkpoints, resume, budgets."""

from __future__ import annotations

import copy
import math
import os
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import normflows as nf
import numpy as np
import pytest
import torch
from torch import nn

from course_utils.core.checkpoints import (
    CheckpointBusyError,
    CheckpointMismatchError,
    checkpoint_lock,
    load_checkpoint,
    save_checkpoint,
)
from course_utils.core.train import History, resolve_device, train
from course_utils.flows2d.flows import realnvp

STEPS_PER_EPOCH = 4  # 64 points in batches of 16


@pytest.fixture
def points(rng: torch.Generator) -> torch.Tensor:
    """64 points of a skewed 2D Gaussian (seeded through the ``rng`` fixture)."""
    return torch.randn(64, 2, generator=rng) * torch.tensor([2.0, 0.5]) + 1.0


def nll_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return -model.log_prob(x).mean()


def small_flow(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return realnvp(dim=2, n_couplings=2, hidden=8)


def normflows_model(seed: int = 0) -> nf.NormalizingFlow:
    """A small normflows flow whose ActNorm layers initialise from the first batch."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(2):
        layers += [
            nf.flows.ActNorm((2,)),
            nf.flows.AffineCouplingBlock(nf.nets.MLP([1, 16, 2], init_zeros=True)),
            nf.flows.Permute(2, mode="swap"),
        ]
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(2), layers)


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def fit(model: nn.Module, data: Any, **kwargs: Any) -> History:
    kwargs.setdefault("batch_size", 16)
    kwargs.setdefault("device", "cpu")
    kwargs.setdefault("progress", False)
    kwargs.setdefault("lr", 1e-2)
    return train(model, kwargs.pop("loss_fn", nll_loss), data, **kwargs)


# ------------------------------------------------------------------- device


def test_resolve_device_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_resolve_device_auto_without_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_resolve_device_auto_on_this_cpu_machine() -> None:
    expected = "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.parametrize("name", ["gpu", "tpu", "", "cuda0", "xla"])
def test_resolve_device_bad_name(name: str) -> None:
    with pytest.raises(ValueError, match="device must be"):
        resolve_device(name)


@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_resolve_device_cuda_unavailable(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="cuda"):
        resolve_device(name)


# ---------------------------------------------------------------- NaN guard


class NaNAt:
    """A loss that turns NaN (or gives NaN gradients) at a chosen step (1-based)."""

    def __init__(self, step: int, where: str = "loss") -> None:
        self.step, self.where, self.calls = step, where, 0

    def __call__(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        loss = nll_loss(model, x)
        if self.calls == self.step:
            if self.where == "loss":
                return loss * float("nan")
            # A finite loss whose gradient is NaN: d sqrt(u)/du at u = 0 is inf, times 0.
            first = next(model.parameters())
            return loss + torch.sqrt(first.sum() * 0.0)
        return loss


class EpochSnapshots:
    """An ``eval_fn`` that keeps a copy of the model and optimizer after each epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.optimizer = optimizer
        self.models: list[dict[str, torch.Tensor]] = []
        self.optimizers: list[dict[str, Any]] = []
        self.modes: list[tuple[bool, bool]] = []

    def __call__(self, model: nn.Module) -> float:
        self.models.append(copy.deepcopy(model.state_dict()))
        if self.optimizer is not None:
            self.optimizers.append(copy.deepcopy(self.optimizer.state_dict()))
        self.modes.append((model.training, torch.is_grad_enabled()))
        return float(len(self.models))


@pytest.mark.parametrize("where", ["loss", "grad"])
def test_nan_guard_restores_last_good_state(points: torch.Tensor, where: str) -> None:
    model = small_flow()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    snaps = EpochSnapshots(optimizer)
    bad_step = 2 * STEPS_PER_EPOCH + 3  # third step of epoch 3
    with pytest.warns(RuntimeWarning, match=f"step {bad_step}"):
        history = fit(
            model,
            points,
            epochs=5,
            optimizer=optimizer,
            loss_fn=NaNAt(bad_step, where),
            eval_fn=snaps,
        )
    assert history.stopped.startswith(f"stopped at step {bad_step}")
    assert ("gradient" if where == "grad" else "loss became nan") in history.stopped
    assert len(history.epoch_loss) == 2 and len(snaps.models) == 2
    # The steps of the rolled-back partial epoch are not recorded either.
    assert len(history.step_loss) == history.steps == 2 * STEPS_PER_EPOCH
    # Parameters and optimizer are exactly those of the end of epoch 2.
    assert same_state(model.state_dict(), snaps.models[-1])
    restored, saved = optimizer.state_dict(), snaps.optimizers[-1]
    assert restored["state"].keys() == saved["state"].keys()
    for k, state in saved["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(restored["state"][k][name]), torch.as_tensor(value))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not model.training


def test_nan_in_first_epoch_restores_initial_parameters(points: torch.Tensor) -> None:
    model = small_flow()
    initial = copy.deepcopy(model.state_dict())
    with pytest.warns(RuntimeWarning, match="NaN|nan"):
        history = fit(model, points, epochs=3, loss_fn=NaNAt(3))
    assert history.stopped and history.epoch_loss == []
    assert same_state(model.state_dict(), initial)


def test_finite_training_does_not_warn(points: torch.Tensor) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = fit(small_flow(), points, epochs=2)
    assert history.stopped == ""
    assert history.steps == 2 * STEPS_PER_EPOCH


# -------------------------------------------------------------- checkpoints


def test_checkpoint_roundtrip_realnvp(points: torch.Tensor, tmp_path: Path) -> None:
    model = small_flow(0)
    fit(model, points, epochs=2)
    path = save_checkpoint(tmp_path / "flow.pt", {"model": model.state_dict(), "note": "ok"})
    fresh = small_flow(1)
    with torch.no_grad():
        expected = model.log_prob(points)
        assert not torch.equal(fresh.log_prob(points), expected)  # the load must matter
        state = load_checkpoint(path)
        fresh.load_state_dict(state["model"])
        assert torch.equal(fresh.log_prob(points), expected)
    assert state["note"] == "ok"


def test_checkpoint_roundtrip_normflows_actnorm(
    points: torch.Tensor, tmp_path: Path, rng: torch.Generator
) -> None:
    """ActNorm's data-dependent init flag is state: a loaded model must not re-initialise."""
    model = normflows_model(0)
    path = tmp_path / "nf.pt"
    fit(model, points, epochs=2, loss_fn=lambda m, x: m.forward_kld(x), checkpoint=path)
    actnorm = model.flows[0]
    assert float(actnorm.data_dep_init_done) == 1.0
    # A batch with other statistics: a re-initialising ActNorm would give other values.
    other = torch.randn(50, 2, generator=rng) * 5.0 - 3.0
    fresh = normflows_model(1)
    with torch.no_grad():
        expected = model.log_prob(other)
        fresh.load_state_dict(load_checkpoint(path)["model"])
        s_before = fresh.flows[0].s.clone()
        assert torch.equal(fresh.log_prob(other), expected)
        assert torch.equal(fresh.flows[0].s, s_before)  # no data-dependent re-init
        fresh.sample(7)  # the forward direction does not re-initialise either
        assert torch.equal(fresh.flows[0].s, s_before)
    # Oracle that the flag matters: an uninitialised copy does re-initialise.
    blank = normflows_model(0)
    with torch.no_grad():
        assert not torch.allclose(blank.log_prob(other), expected)


def test_checkpoint_written_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: torch.Generator
) -> None:
    path = tmp_path / "ck" / "model.pt"
    old = {"w": torch.randn(3, generator=rng), "epoch": 1}
    save_checkpoint(path, old)
    save_checkpoint(path, {"w": torch.randn(3, generator=rng), "epoch": 2})
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]
    good = load_checkpoint(path)
    assert good["epoch"] == 2

    def broken_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"w": torch.zeros(3), "epoch": 3})
    monkeypatch.undo()
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"]  # no temp file
    after = load_checkpoint(path)
    assert after["epoch"] == 2 and torch.equal(after["w"], good["w"])


_side_effects: list[str] = []


def _mark() -> str:
    _side_effects.append("ran")
    return "pwned"


class Evil:
    """Unpickling this calls ``_mark``: what a malicious checkpoint would do."""

    def __reduce__(self) -> tuple[Any, tuple]:
        return (_mark, ())


@pytest.mark.parametrize("payload", [Evil(), History()], ids=["code", "object"])
def test_load_checkpoint_refuses_pickled_objects(tmp_path: Path, payload: object) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "extra": payload}, path)
    _side_effects.clear()
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(path)
    assert _side_effects == []


def test_load_checkpoint_missing_or_garbage(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")


def test_train_checkpoint_contents(points: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    model = small_flow()
    history = fit(model, points, epochs=2, checkpoint=path, extra_state={"hidden": 8})
    state = load_checkpoint(path)
    assert same_state(state["model"], model.state_dict())
    assert state["extra"] == {"hidden": 8}
    assert History.from_state_dict(state["history"]) == history
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]


# ------------------------------------------------------------------- resume


def test_resume_continues_where_it_stopped(points: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "resume.pt"
    straight = small_flow(0)
    h_straight = fit(straight, points, epochs=4)

    first = small_flow(0)
    h_first = fit(first, points, epochs=2, checkpoint=path)
    assert len(h_first.epoch_loss) == 2 and h_first.steps == 2 * STEPS_PER_EPOCH

    resumed = small_flow(7)  # other weights: they must come from the checkpoint
    calls: list[int] = []
    h = fit(resumed, points, epochs=4, checkpoint=path, eval_fn=lambda m: calls.append(1) or 0.0)
    assert len(h.epoch_loss) == 4 and h.steps == 4 * STEPS_PER_EPOCH
    assert len(h.step_loss) == 4 * STEPS_PER_EPOCH
    assert h.step_loss[: len(h_first.step_loss)] == h_first.step_loss
    assert len(calls) == 2  # only the two new epochs ran
    # Interrupted and resumed gives the same run as an uninterrupted one.
    assert h.step_loss == h_straight.step_loss
    assert same_state(resumed.state_dict(), straight.state_dict())
    assert h.seconds[:2] == h_first.seconds and h.seconds[2] >= h.seconds[1]

    # Asking again for 4 epochs finds the work done: nothing changes.
    before = copy.deepcopy(resumed.state_dict())
    again = fit(resumed, points, epochs=4, checkpoint=path)
    assert again.steps == h.steps and same_state(resumed.state_dict(), before)

    # resume=False starts over (and keeps the old file aside).
    with pytest.warns(UserWarning, match="resume.1.pt"):
        over = fit(small_flow(0), points, epochs=1, checkpoint=path, resume=False)
    assert over.steps == STEPS_PER_EPOCH
    assert len(load_checkpoint(path)["history"]["epoch_loss"]) == 1


# ------------------------------------------------------ budget and eval_fn


def test_max_seconds_stops_training(points: torch.Tensor, tmp_path: Path) -> None:
    def slow_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.02)
        return nll_loss(model, x)

    budget = 0.3
    start = time.perf_counter()
    history = fit(
        small_flow(),
        points,
        epochs=1000,
        loss_fn=slow_loss,
        max_seconds=budget,
        checkpoint=tmp_path / "b.pt",
    )
    wall = time.perf_counter() - start
    assert history.stopped.startswith("time budget")
    assert budget <= history.seconds[-1] < budget + 5
    # Each step sleeps 0.02 s, so the budget is spent within 0.3 / 0.02 = 15 steps,
    # and the check after every step stops it right there.
    assert 1 <= history.steps <= 16
    assert wall < budget + 10
    # The partial epoch is saved, so a resume does not lose it.
    assert load_checkpoint(tmp_path / "b.pt")["history"]["steps"] == history.steps


def test_eval_fn_recorded_per_epoch(points: torch.Tensor, rng: torch.Generator) -> None:
    held_out = torch.randn(32, 2, generator=rng) + 1.0
    snaps = EpochSnapshots()
    values: list[float] = []

    def eval_fn(model: nn.Module) -> float:
        snaps(model)
        values.append(float(nll_loss(model, held_out)))
        return values[-1]

    model = small_flow()
    history = fit(model, points, epochs=3, eval_fn=eval_fn)
    assert history.eval == values and len(values) == 3
    assert snaps.modes == [(False, False)] * 3  # eval mode, no autograd
    with torch.no_grad():
        assert history.eval[-1] == pytest.approx(float(nll_loss(model, held_out)), abs=1e-6)
    assert len(history.seconds) == 3 and history.seconds == sorted(history.seconds)
    # epoch_loss is the mean of that epoch's step losses.
    for e in range(3):
        chunk = history.step_loss[e * STEPS_PER_EPOCH : (e + 1) * STEPS_PER_EPOCH]
        assert history.epoch_loss[e] == pytest.approx(sum(chunk) / len(chunk))
    # Training does help on this easy problem.
    assert history.epoch_loss[-1] < history.epoch_loss[0]


def test_iterable_of_batches_and_empty_data(points: torch.Tensor) -> None:
    history = fit(small_flow(), [points[:32], points[32:]], epochs=2)
    assert history.steps == 4
    with pytest.raises(ValueError, match="no batch"):
        fit(small_flow(), points[:0], epochs=1)


def test_steps_per_epoch_draws_every_example_before_repeating(points: torch.Tensor) -> None:
    seen: list[torch.Tensor] = []

    def record(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return nll_loss(model, x)

    n = len(points)
    steps = n // 32 + 3  # a bit more than one pass per epoch
    history = train(small_flow(), record, points, epochs=2, batch_size=32, steps_per_epoch=steps)
    assert len(history.epoch_loss) == 2 and history.steps == 2 * steps
    assert history.epoch_steps == [steps, 2 * steps]
    first_pass = torch.cat(seen[: n // 32])
    # No example drawn twice within the first full pass.
    assert len(torch.unique(first_pass, dim=0)) == len(first_pass)


def test_on_epoch_end_sees_each_epoch(points: torch.Tensor) -> None:
    lengths: list[int] = []
    train(
        small_flow(),
        nll_loss,
        points,
        epochs=3,
        batch_size=64,
        on_epoch_end=lambda h: lengths.append(len(h.epoch_loss)),
    )
    assert lengths == [1, 2, 3]


def test_evaluation_time_is_not_training_time(points: torch.Tensor) -> None:
    def slow_eval(model: nn.Module) -> float:
        time.sleep(0.3)
        return 0.0

    start = time.perf_counter()
    history = train(small_flow(), nll_loss, points, epochs=3, batch_size=256, eval_fn=slow_eval)
    wall = time.perf_counter() - start
    # the three 0.3 s evaluations are not counted, however slow the machine is
    assert history.seconds[-1] <= wall - 3 * 0.3


def test_resumed_run_that_reached_its_budget_does_not_train(
    points: torch.Tensor, tmp_path: Path
) -> None:
    runs = [
        train(
            small_flow(),
            nll_loss,
            points,
            epochs=10**6,
            batch_size=64,
            max_seconds=0.2,
            checkpoint=tmp_path / "c.pt",
        )
        for _ in range(2)
    ]
    assert runs[0].steps > 0 and runs[1].steps == runs[0].steps
    assert runs[1].stopped == "time budget of 0.2 s already used by the checkpoint"


# ------------------------------------------------- careless settings and state


def _counting_loss(calls: list[int]):
    def loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return nll_loss(model, x)

    return loss


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_seconds": float("nan")}, "max_seconds must be a finite number > 0"),
        ({"max_seconds": 0}, "max_seconds must be a finite number > 0"),
        ({"max_seconds": -1}, "max_seconds"),
        ({"steps_per_epoch": 0}, "steps_per_epoch must be an integer >= 1"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"batch_size": -1}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"epochs": -1}, "epochs must be an integer >= 0"),
        ({"max_grad_norm": -1.0}, "max_grad_norm must be a finite number > 0"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"lr": float("nan")}, "lr"),
    ],
)
def test_bad_settings_are_refused_before_training(
    points: torch.Tensor, tmp_path: Path, kwargs: dict, match: str
) -> None:
    calls: list[int] = []
    kwargs.setdefault("epochs", 1)
    with pytest.raises(ValueError, match=match):
        fit(
            small_flow(),
            points,
            checkpoint=tmp_path / "x.pt",
            loss_fn=_counting_loss(calls),
            **kwargs,
        )
    assert calls == [] and list(tmp_path.iterdir()) == []


def test_careless_losses_and_data_give_clear_errors(points: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"loss_fn must return a scalar.*\(16,\)"):
        fit(small_flow(), points, loss_fn=lambda m, x: -m.log_prob(x))
    with pytest.raises(ValueError, match="data is float64 but the model's parameters are float32"):
        fit(small_flow(), points.double())
    with pytest.raises(ValueError, match="batch 2 of data is empty"):
        fit(small_flow(), [points[:16], points[:0]])
    with pytest.raises(ValueError, match="data is empty"):
        fit(small_flow(), points[:0])


def test_numpy_scalars_and_paths_are_saved_loadable(points: torch.Tensor, tmp_path: Path) -> None:
    """A learning rate from np.logspace or a Path in the state must not make resuming fail."""
    path = tmp_path / "np.pt"
    lr = np.logspace(-3, -1, 3)[1]  # np.float64
    extra = {"lr": np.float32(0.01), "data": tmp_path / "x", "sizes": (np.int64(3),)}

    def run(epochs: int) -> History:
        model = small_flow()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        return fit(
            model, points, epochs=epochs, optimizer=optimizer, checkpoint=path, extra_state=extra
        )

    run(1)
    state = load_checkpoint(path)  # weights_only=True
    assert state["extra"] == {"lr": pytest.approx(0.01), "data": str(tmp_path / "x"), "sizes": (3,)}
    assert type(state["optimizer"]["param_groups"][0]["lr"]) is float
    assert run(2).steps == 2 * STEPS_PER_EPOCH  # resumed, not refused


def test_unsavable_state_is_refused_before_training(points: torch.Tensor, tmp_path: Path) -> None:
    calls: list[int] = []
    with pytest.raises(ValueError, match=r"extra_state\['fn'\] is a function"):
        fit(
            small_flow(),
            points,
            loss_fn=_counting_loss(calls),
            checkpoint=tmp_path / "x.pt",
            extra_state={"fn": lambda: 0},
        )
    assert calls == [] and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=r"state\['extra'\]\[0\] is an object"):
        save_checkpoint(tmp_path / "y.pt", {"extra": [object()]})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------- one writer per checkpoint


def test_a_second_writer_in_this_process_is_refused(points: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "busy.pt"
    calls: list[int] = []
    with checkpoint_lock(path):
        with pytest.raises(CheckpointBusyError, match=f"process {os.getpid()}"):
            fit(small_flow(), points, loss_fn=_counting_loss(calls), checkpoint=path)
    assert calls == [] and not path.exists()
    assert fit(small_flow(), points, checkpoint=path).steps == STEPS_PER_EPOCH  # released
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy.pt"]


def test_a_writer_in_another_process_is_refused_and_its_stale_lock_taken_over(
    points: torch.Tensor, tmp_path: Path
) -> None:
    path = tmp_path / "shared.pt"
    fit(small_flow(), points, epochs=1, checkpoint=path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from course_utils.core.checkpoints import checkpoint_lock\n"
            "with checkpoint_lock(sys.argv[1]):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(120)\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointBusyError, match=f"process {holder.pid}"):
            fit(small_flow(), points, epochs=3, checkpoint=path)
        assert load_checkpoint(path)["history"]["steps"] == STEPS_PER_EPOCH  # untouched
    finally:
        holder.kill()  # like kill -9: the holder cannot remove its lock
        holder.wait()
        holder.stdout.close()
    assert (tmp_path / "shared.pt.lock").exists()
    # The holder is dead, so its lock is stale: the next run takes it over.
    assert fit(small_flow(), points, epochs=2, checkpoint=path).steps == 2 * STEPS_PER_EPOCH
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.pt"]


def test_fresh_run_keeps_the_old_checkpoint(points: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    first = fit(small_flow(), points, epochs=2, checkpoint=path)
    with pytest.warns(UserWarning, match=r"kept the previous checkpoint as .*run\.1\.pt"):
        fit(small_flow(), points, epochs=1, checkpoint=path, resume=False)
    with pytest.warns(UserWarning, match=r"run\.2\.pt"):
        fit(small_flow(), points, epochs=1, checkpoint=path, resume=False)
    assert load_checkpoint(tmp_path / "run.1.pt")["history"]["steps"] == first.steps
    assert load_checkpoint(tmp_path / "run.2.pt")["history"]["steps"] == STEPS_PER_EPOCH
    assert load_checkpoint(path)["history"]["steps"] == STEPS_PER_EPOCH


def test_a_fresh_run_that_saves_nothing_leaves_the_old_checkpoint_in_place(
    points: torch.Tensor, tmp_path: Path
) -> None:
    path = tmp_path / "run.pt"
    fit(small_flow(), points, epochs=2, checkpoint=path)
    with pytest.warns(RuntimeWarning, match="nan"):
        fit(small_flow(), points, epochs=2, checkpoint=path, resume=False, loss_fn=NaNAt(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]
    assert load_checkpoint(path)["history"]["steps"] == 2 * STEPS_PER_EPOCH


# ------------------------------------------------ resuming only a matching run


def test_resume_refuses_another_run_and_says_what_differs(
    points: torch.Tensor, tmp_path: Path
) -> None:
    path = tmp_path / "a.pt"
    fit(small_flow(), points, epochs=1, checkpoint=path, extra_state={"dataset": "mnist"})
    before = path.read_bytes()

    def refused(model: nn.Module, **kwargs: Any) -> str:
        calls: list[int] = []
        kwargs.setdefault("extra_state", {"dataset": "mnist"})
        with pytest.raises(CheckpointMismatchError) as info:
            fit(model, points, epochs=2, checkpoint=path, loss_fn=_counting_loss(calls), **kwargs)
        assert calls == []
        return str(info.value)

    message = refused(small_flow(), extra_state={"dataset": "fashion-mnist"})
    assert "dataset: saved 'mnist', here 'fashion-mnist'" in message
    assert "resume=False" in message
    torch.manual_seed(0)
    message = refused(realnvp(dim=2, n_couplings=3, hidden=16))
    assert "model:" in message and "shape" in message and "missing" in message
    assert len(message.splitlines()) < 12  # a summary, not hundreds of state-dict lines
    model = small_flow()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    assert "optimizer: saved Adam, here SGD" in refused(model, optimizer=sgd)
    # A checkpoint from before the optimizer's type was saved: its settings tell.
    state = load_checkpoint(path)
    del state["optimizer_type"]
    old = tmp_path / "old.pt"
    torch.save(state, old)
    path = old
    model = small_flow()
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    assert "optimizer: saved settings 'amsgrad'" in refused(model, optimizer=sgd)
    assert (tmp_path / "a.pt").read_bytes() == before


# ------------------------------------------------------- smaller silent ones


def test_nan_guard_restores_the_scheduler(points: torch.Tensor) -> None:
    model = small_flow()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    bad_step = 2 * STEPS_PER_EPOCH + 3
    with pytest.warns(RuntimeWarning):
        history = fit(
            model,
            points,
            epochs=4,
            optimizer=optimizer,
            scheduler=scheduler,
            loss_fn=NaNAt(bad_step),
        )
    assert history.steps == 2 * STEPS_PER_EPOCH
    assert scheduler.last_epoch == 2 * STEPS_PER_EPOCH
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5 ** (2 * STEPS_PER_EPOCH))


def test_unwritable_checkpoint_paths_fail_before_training(
    points: torch.Tensor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        fit(small_flow(), points, loss_fn=_counting_loss(calls), checkpoint=folder)
    locked = tmp_path / "read-only"
    locked.mkdir()
    locked.chmod(0o555)
    if os.access(locked, os.W_OK):  # root writes anywhere: make the folder refuse it
        real_open = os.open

        def refuse(path: Any, *args: Any, **kwargs: Any) -> int:
            if Path(path).parent == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(PermissionError, match="cannot write the checkpoint"):
        fit(small_flow(), points, loss_fn=_counting_loss(calls), checkpoint=locked / "x.pt")
    monkeypatch.undo()
    locked.chmod(0o755)
    assert calls == []


def test_leftovers_of_killed_runs_are_removed(points: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "run.pt"
    (tmp_path / ".run.pt.k1ll3d.tmp").write_bytes(b"\0" * 1000)  # what a kill -9 leaves
    (tmp_path / ".other.pt.k1ll3d.tmp").write_bytes(b"\0")  # another checkpoint's: kept
    fit(small_flow(), points, checkpoint=path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.k1ll3d.tmp", "run.pt"]


def test_checkpoint_mode_and_symlink_are_kept(points: torch.Tensor, tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "new.pt", {"x": 1})
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # as any new file, not 0600
        path.chmod(0o640)
        save_checkpoint(path, {"x": 2})
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(old_umask)
    target = tmp_path / "store" / "real.pt"
    target.parent.mkdir()
    link = tmp_path / "link.pt"
    link.symlink_to(target)
    fit(small_flow(), points, epochs=2, checkpoint=link)
    assert link.is_symlink() and load_checkpoint(target)["history"]["steps"] == 2 * STEPS_PER_EPOCH
    assert sorted(p.name for p in target.parent.iterdir()) == ["real.pt"]


def test_a_model_of_mixed_dtypes_takes_data_of_either(points: torch.Tensor) -> None:
    """normflows builds some base distributions in float64 under float32 layers."""
    torch.manual_seed(0)
    base = nf.distributions.GaussianMixture(2, 2)  # float64 parameters
    flow = nf.NormalizingFlow(base, [nf.flows.AffineConstFlow((2,))])
    assert {p.dtype for p in flow.parameters()} == {torch.float32, torch.float64}
    history = fit(flow, points, loss_fn=lambda m, x: m.forward_kld(x))
    assert history.steps == STEPS_PER_EPOCH


def test_a_checkpoint_below_a_file_fails_before_training(
    points: torch.Tensor, tmp_path: Path
) -> None:
    calls: list[int] = []
    (tmp_path / "plain").write_text("not a folder")
    with pytest.raises(OSError, match="cannot write the checkpoint"):
        fit(
            small_flow(),
            points,
            loss_fn=_counting_loss(calls),
            checkpoint=tmp_path / "plain" / "x.pt",
        )
    assert calls == []


# ------------------------------------------ states that cannot be right are refused


def test_an_optimizer_of_other_parameters_is_refused(points: torch.Tensor) -> None:
    calls: list[int] = []
    other = torch.optim.Adam(small_flow(1).parameters(), lr=1e-2)
    with pytest.raises(ValueError, match="optimizer \\(Adam\\) updates none of the model's"):
        fit(small_flow(), points, optimizer=other, loss_fn=_counting_loss(calls))
    frozen = small_flow()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="updates none of the model's trainable parameters"):
        fit(frozen, points, optimizer=torch.optim.Adam(frozen.parameters()))
    assert calls == []
    # An optimizer over part of the model (fine-tuning some layers) is fine.
    model = small_flow()
    first = next(model.parameters())
    assert fit(model, points, optimizer=torch.optim.SGD([first], lr=1e-3)).steps > 0


def test_a_resume_that_would_train_less_than_the_checkpoint_is_refused(
    points: torch.Tensor, tmp_path: Path
) -> None:
    path = tmp_path / "run.pt"
    fit(small_flow(), points, epochs=3, checkpoint=path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"epochs=1, but the checkpoint .* already holds 3"):
        fit(small_flow(), points, epochs=1, checkpoint=path)
    assert path.read_bytes() == before
    assert fit(small_flow(), points, epochs=3, checkpoint=path).steps == 3 * STEPS_PER_EPOCH


def test_a_resume_on_other_data_or_batch_size_is_refused(
    points: torch.Tensor, tmp_path: Path
) -> None:
    path = tmp_path / "run.pt"
    fit(small_flow(), points, epochs=1, checkpoint=path)
    before = path.read_bytes()
    calls: list[int] = []
    with pytest.raises(CheckpointMismatchError, match=r"data: saved 64 × 2 float32") as info:
        fit(small_flow(), points + 1, epochs=2, checkpoint=path, loss_fn=_counting_loss(calls))
    assert "here 64 × 2 float32" in str(info.value)
    with pytest.raises(CheckpointMismatchError, match="batch_size: saved 16, here 8"):
        fit(small_flow(), points, epochs=2, checkpoint=path, batch_size=8)
    assert calls == [] and path.read_bytes() == before
    assert fit(small_flow(), points.clone(), epochs=2, checkpoint=path).steps > STEPS_PER_EPOCH


def test_a_weights_only_file_is_not_resumed_as_a_run(points: torch.Tensor, tmp_path: Path) -> None:
    model = small_flow()
    path = save_checkpoint(tmp_path / "weights.pt", {"model": model.state_dict(), "extra": {}})
    scheduler_model = small_flow()
    optimizer = torch.optim.Adam(scheduler_model.parameters())
    with pytest.raises(CheckpointMismatchError, match="holds no optimizer state"):
        fit(
            scheduler_model,
            points,
            checkpoint=path,
            optimizer=optimizer,
            scheduler=torch.optim.lr_scheduler.StepLR(optimizer, 1),
        )


def test_an_evaluation_that_returns_nan_is_recorded_with_a_warning(points: torch.Tensor) -> None:
    with pytest.warns(RuntimeWarning, match=r"eval_fn returned nan after epoch 1"):
        history = fit(small_flow(), points, epochs=1, eval_fn=lambda m: float("nan"))
    assert math.isnan(history.eval[0])
