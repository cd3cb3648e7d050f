"""The Glow builder of lesson 07: invertibility, bits/dim, input checks, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.data import image_splits
from course_utils.metrics import bits_per_dim
from course_utils.models import Glow, dequantize, load_glow
from course_utils.train import train_glow

TINY = {"levels": 2, "blocks": 1, "hidden": 8}


@pytest.fixture
def tiny(rng: torch.Generator) -> Glow:
    model = Glow(**TINY)
    with torch.no_grad():  # leave the identity initialisation so the test is not trivial
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=rng))
    return model


@pytest.mark.parametrize("shape,logit", [((1, 28, 28), None), ((3, 28, 28), 0.05)])
def test_glow_inverts(rng: torch.Generator, shape, logit) -> None:
    model = Glow(shape=shape, logit_alpha=logit, **TINY)
    x = torch.rand(4, *shape, generator=rng) * 0.98 + 0.01
    with torch.no_grad():
        model.log_prob(x)  # ActNorm's data-dependent initialisation
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=rng))
        z = model.encode(x)
        assert [tuple(t.shape[1:]) for t in z] == model.latent_shapes()
        torch.testing.assert_close(model.decode(z), x, atol=1e-4, rtol=0)


def test_latent_shapes_and_sizes() -> None:
    assert Glow(**TINY).latent_shapes() == [(8, 7, 7), (2, 14, 14)]
    assert Glow(shape=(3, 28, 28), **TINY).latent_shapes() == [(24, 7, 7), (6, 14, 14)]
    with pytest.raises(ValueError, match="divisible by 2\\*\\*levels"):
        Glow(levels=3, blocks=1, hidden=8)
    with pytest.raises(ValueError, match="checkerboard split needs an even size"):
        Glow(split_mode="checkerboard", **TINY)
    assert Glow(levels=1, blocks=1, hidden=8, split_mode="checkerboard").latent_shapes() == [
        (4, 14, 14)
    ]


def test_bits_per_dim_matches_hand_computation(tiny: Glow, rng: torch.Generator) -> None:
    x = dequantize(torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8), rng)
    with torch.no_grad():
        lp = tiny.log_prob(x)
    by_hand = float(((-lp + 784 * math.log(256)) / (784 * math.log(2))).mean())
    assert tiny.bits_per_dim(x) == pytest.approx(by_hand, rel=1e-6)
    assert bits_per_dim(lp, 784) == pytest.approx(by_hand, rel=1e-6)


def test_dequantize_bins(rng: torch.Generator) -> None:
    k = torch.randint(0, 256, (3, 1, 4, 4), dtype=torch.uint8)
    u = dequantize(k, rng)
    assert torch.equal(torch.floor(u * 256).to(torch.uint8), k)
    with pytest.raises(ValueError, match="uint8"):
        dequantize(k.float())


def test_bad_inputs_give_clear_errors(tiny: Glow) -> None:
    with pytest.raises(ValueError, match=r"shape \(batch, 1, 28, 28\), got \(2, 28, 28\)"):
        tiny.log_prob(torch.rand(2, 28, 28))
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        tiny.log_prob(torch.rand(2, 1, 28, 28) * 255)
    bad = torch.rand(2, 1, 28, 28)
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        tiny.log_prob(bad)
    with pytest.raises(ValueError, match="float"):
        tiny.log_prob(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="temperature"):
        tiny.sample(2, temperature=0.0)


def test_train_save_load_sample_end_to_end(tmp_path, shared_data) -> None:
    recipe = {
        "model": TINY,
        "optimizer": "adam",
        "lr": 1e-3,
        "weight_decay": 0.0,
        "warmup_steps": 2,
        "batch_size": 16,
    }
    ckpt = tmp_path / "glow.pt"
    model, history = train_glow(
        "mnist-9k",
        minutes=0.05,
        recipe=recipe,
        checkpoint=ckpt,
        eval_images=64,
        steps_per_epoch=3,
        device="cpu",
    )
    assert history.steps >= 3 and all(math.isfinite(v) for v in history.eval)
    assert ckpt.is_file()
    loaded, state = load_glow(ckpt)
    assert state["extra"]["dataset"] == "mnist-9k"
    _, test = image_splits("mnist-9k")
    x = dequantize(test[:8], torch.Generator().manual_seed(0))
    # The loaded model gives the trained model's log-probs (ActNorm's data-initialised
    # scale and shift were saved, and loading does not initialise them again).
    with torch.no_grad():
        torch.testing.assert_close(loaded.log_prob(x), model.eval().log_prob(x))
        # ... and it is data-initialised: a fresh model's first call would differ.
        assert not torch.allclose(Glow(**TINY).log_prob(x), loaded.log_prob(x))
    samples = loaded.sample(4, temperature=0.7)
    assert samples.shape == (4, 1, 28, 28) and torch.isfinite(samples).all()
    assert math.isfinite(loaded.bits_per_dim(x))


def test_load_glow_refuses_foreign_checkpoint(tmp_path) -> None:
    from course_utils.train import save_checkpoint

    path = save_checkpoint(tmp_path / "x.pt", {"model": {}, "extra": {}})
    with pytest.raises(ValueError, match="no Glow configuration"):
        load_glow(path)


def test_cli_trains_and_resumes(tmp_path, shared_data, capsys) -> None:
    from course_utils.train import load_checkpoint, main

    ckpt = tmp_path / "cli.pt"
    args = ["glow", "--dataset", "mnist-9k", "--device", "cpu", "--checkpoint", str(ckpt)]
    args += ["--steps-per-epoch", "2"]
    assert main([*args, "--minutes", "0.01"]) == 0
    first = load_checkpoint(ckpt)["history"]["steps"]
    assert first >= 2 and "held-out" in capsys.readouterr().out
    # A larger budget continues the same run; --fresh starts over.
    assert main([*args, "--minutes", "0.03"]) == 0
    resumed = load_checkpoint(ckpt)["history"]
    assert resumed["steps"] > first and resumed["seconds"][-1] >= 0.03 * 60
    assert main([*args, "--minutes", "0.01", "--fresh"]) == 0
    assert load_checkpoint(ckpt)["history"]["seconds"][-1] < resumed["seconds"][-1]


def test_unknown_recipe_is_a_clear_error(shared_data) -> None:
    with pytest.raises(ValueError, match="unknown recipe 'huge'.*course"):
        train_glow("mnist-9k", minutes=0.01, recipe="huge", device="cpu")
