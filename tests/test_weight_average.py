"""Tests of ``benchmarks/weight_average.py``'s moving averages of the weights."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "weight_average.py"
_spec = importlib.util.spec_from_file_location("weight_average", _PATH)
assert _spec is not None and _spec.loader is not None
W = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = W
_spec.loader.exec_module(W)


def _run(decays: list[float], steps: int) -> tuple[torch.nn.Module, object, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    # two parameter groups in an order unlike model.parameters(), as make_optimizer may build
    params = list(model.parameters())
    optimizer = torch.optim.SGD([{"params": params[2:]}, {"params": params[:2]}], lr=0.1)
    averages = W.WeightAverages(decays)
    optimizer.register_step_post_hook(averages.update)
    seen = []
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        optimizer.step()
        seen.append(torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone())
    return model, averages, seen


def test_the_average_is_the_bias_corrected_exponential_average_of_every_step() -> None:
    d = 0.9
    model, averages, seen = _run([d], steps=25)
    weights = torch.tensor([(1 - d) * d ** (len(seen) - 1 - k) for k in range(len(seen))])
    expected = (weights[:, None] * torch.stack(seen)).sum(0) / (1 - d ** len(seen))
    got = torch.nn.utils.parameters_to_vector(averages.model(model, d).parameters())
    torch.testing.assert_close(got, expected)
    # the trained model itself is untouched
    torch.testing.assert_close(torch.nn.utils.parameters_to_vector(model.parameters()), seen[-1])


def test_after_one_step_the_average_is_the_weights() -> None:
    model, averages, seen = _run([0.5, 0.999], steps=1)
    for d in (0.5, 0.999):
        got = torch.nn.utils.parameters_to_vector(averages.model(model, d).parameters())
        torch.testing.assert_close(got, seen[0])


@pytest.mark.parametrize("decays", [[], [0.0], [1.0], [0.9, 1.5]])
def test_decays_outside_zero_one_are_refused(decays: list[float]) -> None:
    with pytest.raises(ValueError, match="decays"):
        W.WeightAverages(decays)
