"""Run under ``torchrun --nproc_per_node 2``: train a tiny flow and record what each rank saw.

Used by ``tests/test_distributed.py``. Each row of the data carries its own
index as a third column, so the loss function can note which rows this rank
trained on. Writes ``rank<r>.pt`` (the rows seen at each step and the final
weights) into the folder given as the first argument; rank 0 also writes the
checkpoint ``run.pt`` there.
"""

import sys
from pathlib import Path

import torch

from course_utils.core import distributed
from course_utils.core.train import train
from course_utils.flows2d.flows import realnvp


def main() -> None:
    out = Path(sys.argv[1])
    distributed.setup(torch.device("cpu"))
    rank = distributed.world()[0]
    torch.manual_seed(0)
    model = realnvp(dim=2, n_couplings=2, hidden=8)
    points = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    data = torch.cat([points, torch.arange(64.0)[:, None]], dim=1)
    seen: list[list[int]] = []

    def loss_fn(m, batch):
        seen.append(batch[:, 2].long().tolist())
        return -m.log_prob(batch[:, :2]).mean()

    history = train(
        model,
        loss_fn,
        data,
        epochs=3,
        batch_size=8,
        device="cpu",
        checkpoint=out / "run.pt",
        progress=False,
        steps_per_epoch=2,
        eval_fn=lambda m: float(-m.log_prob(points).mean()),
    )
    record = {"seen": seen, "weights": model.state_dict(), "eval": history.eval}
    torch.save(record, out / f"rank{rank}.pt")
    distributed.teardown()


if __name__ == "__main__":
    main()
