"""Training on two CPU processes (torchrun, gloo): sharded batches, one writer, any-size resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from course_utils.core import distributed
from course_utils.core.checkpoints import load_checkpoint
from course_utils.glow.cli import main

REPO = Path(__file__).resolve().parent.parent


def torchrun(*args: str, timeout: float = 240, ok: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [*cmd, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    if ok:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_agreement_outside_a_group_is_the_error_itself() -> None:
    distributed.agree(None)
    with pytest.raises(KeyError, match="busy"):
        distributed.agree(KeyError("busy"))
    entered: list[str] = []

    class Lock:
        def __enter__(self):
            entered.append("in")

        def __exit__(self, *exc):
            entered.append("out")

    def refuse() -> None:
        raise PermissionError("cannot write")

    with pytest.raises(PermissionError, match="cannot write"):
        with distributed.decided_on_main(Lock, refuse):
            entered.append("body")
    assert entered == []  # checked before the lock is taken: nothing to release
    with distributed.decided_on_main(Lock):
        entered.append("body")
    assert entered == ["in", "body", "out"]


def test_shard_takes_every_world_size_th_row(monkeypatch) -> None:
    batch = torch.arange(10)
    monkeypatch.setattr(distributed, "world", lambda: (1, 3))
    assert distributed.shard(batch).tolist() == [1, 4, 7]
    monkeypatch.setattr(distributed, "world", lambda: (0, 1))
    assert distributed.shard(batch).tolist() == list(range(10))
    assert distributed.any_rank(True, torch.device("cpu")) is True
    assert distributed.from_main(2.5, torch.device("cpu")) == 2.5


@pytest.mark.slow
def test_two_ranks_see_different_rows_and_end_with_the_same_weights(tmp_path: Path) -> None:
    torchrun("tests/ddp_probe.py", str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert len(r0["seen"]) == len(r1["seen"]) == 6  # 3 epochs of 2 steps on both
    for a, b in zip(r0["seen"], r1["seen"], strict=True):
        assert len(a) == len(b) == 8  # batch_size rows on each rank: 16 a step
        assert not set(a) & set(b)  # different rows
    for name, w in r0["weights"].items():  # the gradients were averaged
        torch.testing.assert_close(w, r1["weights"][name])
    assert r0["eval"] == r1["eval"]  # rank 0's evaluation, broadcast
    state = load_checkpoint(tmp_path / "run.pt")
    assert state["history"]["steps"] == 6
    assert not list(tmp_path.glob("*.lock")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_glow_cli_under_torchrun_resumes_on_one_process(tmp_path: Path, shared_data) -> None:
    ckpt = tmp_path / "glow.pt"
    args = ["-m", "course_utils.glow", "--dataset", "mnist", "--recipe", "small"]
    args += ["--device", "cpu", "--checkpoint", str(ckpt), "--steps-per-epoch", "2"]
    args += ["--eval-images", "16"]
    done = torchrun(*args, "--minutes", "0.02")
    assert done.stdout.count("held-out") >= 1  # rank 0 alone prints its lines
    first = load_checkpoint(ckpt)["history"]
    assert first["steps"] >= 1
    # the same run, now one process, for well past the first part's time (a busy machine's
    # first steps are slow)
    more = (2 * first["seconds"][-1] + 1.0) / 60
    assert main([*args[2:], "--minutes", f"{more:.4f}"]) == 0
    resumed = load_checkpoint(ckpt)["history"]
    assert resumed["steps"] > first["steps"]
    assert resumed["step_loss"][: len(first["step_loss"])] == first["step_loss"]


@pytest.mark.slow
def test_a_refusal_on_rank_0_stops_every_rank_with_its_message(tmp_path: Path) -> None:
    (tmp_path / "run.pt.lock").write_text(f"{os.getpid()}\n")  # a live writer holds the lock
    done = torchrun("tests/ddp_refusal_probe.py", str(tmp_path), ok=False)
    assert done.returncode != 0
    said = {r: (tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)}
    assert said[0] == said[1], said  # rank 1 was told rank 0's refusal, word for word
    assert said[0].startswith("CheckpointBusyError: ") and "is being written by" in said[0]
    output = done.stdout + done.stderr
    assert "Connection closed" not in output and "DistributedDataParallel" not in output
    assert not (tmp_path / "run.pt").exists()
