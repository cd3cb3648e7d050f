"""Run under ``torchrun --nproc_per_node 2``: train into a checkpoint rank 0 must refuse.

Used by ``tests/test_distributed.py``. The test leaves ``run.pt.lock`` of a live
process in the folder given as the first argument, so rank 0 cannot take the
lock. Each rank writes ``rank<r>.txt`` with the type and message of the error it
got (or ``trained`` if it got none) and exits with 3 on an error.
"""

import sys
from pathlib import Path

import torch

from course_utils.core import distributed
from course_utils.core.train import train
from course_utils.flows2d.flows import realnvp


def main() -> int:
    out = Path(sys.argv[1])
    distributed.setup(torch.device("cpu"))
    rank = distributed.world()[0]
    torch.manual_seed(0)
    model = realnvp(dim=2, n_couplings=2, hidden=8)
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    try:
        train(
            model,
            lambda m, x: -m.log_prob(x).mean(),
            data,
            epochs=1,
            batch_size=8,
            device="cpu",
            checkpoint=out / "run.pt",
            progress=False,
        )
    except Exception as err:  # what each rank was told
        (out / f"rank{rank}.txt").write_text(f"{type(err).__name__}: {err}")
        return 3
    finally:
        distributed.teardown()
    (out / f"rank{rank}.txt").write_text("trained")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
