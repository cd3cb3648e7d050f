"""The Glow builder of lesson 07: invertibility, bits/dim, input checks, checkpoints."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from course_utils.core.checkpoints import CheckpointMismatchError, save_checkpoint
from course_utils.core.data import image_splits, load_mnist
from course_utils.core.metrics import bits_per_dim
from course_utils.glow.cli import main
from course_utils.glow.model import Glow, GlowConfig, dequantize
from course_utils.glow.recipes import COURSE, Optimiser, Recipe, Schedule
from course_utils.glow.train import load_glow, train_glow

TINY = {"levels": 2, "blocks": 1, "hidden": 8}


@pytest.fixture
def tiny(rng: torch.Generator) -> Glow:
    model = Glow(**TINY)
    with torch.no_grad():  # leave the identity initialisation so the test is not trivial
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=rng))
    return model


@pytest.mark.parametrize(
    "shape,logit,base",
    [
        ((1, 28, 28), None, "channel"),
        ((3, 28, 28), 0.05, "channel"),
        ((3, 28, 28), 0.05, "spectral"),
    ],
)
def test_glow_inverts(rng: torch.Generator, shape, logit, base) -> None:
    model = Glow(shape=shape, logit_alpha=logit, base=base, **TINY)
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
    recipe = Recipe(GlowConfig(**TINY), Optimiser("adam", lr=1e-3), Schedule(warmup_steps=2), 16)
    ckpt = tmp_path / "glow.pt"
    model, history = train_glow(
        "mnist",
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
    assert state["extra"]["dataset"] == "mnist"
    assert loaded.initialized  # the checkpoint's ActNorm statistics count as initialised
    with pytest.raises(RuntimeError, match="already initialised"):
        loaded.initialize(dequantize(image_splits("mnist")[0][:64]))
    _, test = image_splits("mnist")
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
    from course_utils.core.checkpoints import save_checkpoint

    path = save_checkpoint(tmp_path / "x.pt", {"model": {}, "extra": {}})
    with pytest.raises(ValueError, match="no Glow configuration"):
        load_glow(path)


def test_cli_trains_and_resumes(tmp_path, shared_data, capsys) -> None:
    from course_utils.core.checkpoints import load_checkpoint

    ckpt = tmp_path / "cli.pt"
    args = ["--dataset", "mnist", "--device", "cpu", "--checkpoint", str(ckpt)]
    # the small recipe's steps are short, so a loaded machine still takes several in the budget
    args += ["--steps-per-epoch", "2", "--eval-images", "16", "--recipe", "small"]
    assert main([*args, "--minutes", "0.01"]) == 0
    saved = load_checkpoint(ckpt)["history"]
    first = saved["steps"]
    assert first >= 1 and "held-out" in capsys.readouterr().out
    # A larger budget continues the same run (well past the first run's time, however long its
    # first steps took on a busy machine); --fresh starts over.
    more = (2 * saved["seconds"][-1] + 1.0) / 60
    assert main([*args, "--minutes", f"{more:.4f}"]) == 0
    resumed = load_checkpoint(ckpt)["history"]
    assert resumed["steps"] > first and resumed["seconds"][-1] >= round(more, 4) * 60 - 1e-6
    with pytest.warns(UserWarning, match=r"cli\.1\.pt"):
        assert main([*args, "--minutes", "0.01", "--fresh"]) == 0
    assert load_checkpoint(ckpt)["history"]["seconds"][-1] < resumed["seconds"][-1]
    assert load_checkpoint(tmp_path / "cli.1.pt")["history"] == resumed  # the old run is kept


def test_unknown_recipe_is_a_clear_error(shared_data) -> None:
    with pytest.raises(ValueError, match="unknown recipe 'huge'.*course"):
        train_glow("mnist", minutes=0.01, recipe="huge", device="cpu")


# --------------------------------------------- ActNorm's data-dependent start


@pytest.fixture
def real_digits(shared_data) -> torch.Tensor:
    images, _ = load_mnist("mnist", "test", root=shared_data)
    return dequantize(images[:64, None], torch.Generator().manual_seed(0))


def test_sampling_first_does_not_initialise_actnorm(real_digits: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = Glow(**TINY)
    torch.manual_seed(0)
    reference = Glow(**TINY).initialize(real_digits)
    assert not model.initialized and reference.initialized
    samples = model.sample(4)  # an untrained model's samples: allowed, but a latent is not data
    assert samples.shape == (4, 1, 28, 28) and not model.initialized
    model.decode(model.sample_latents(2))
    assert not model.initialized
    model.initialize(real_digits)
    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(real_digits), reference.log_prob(real_digits))
    assert model.bits_per_dim(real_digits) < 20  # not 9.9e23


def test_a_blank_batch_cannot_initialise_actnorm(real_digits: torch.Tensor) -> None:
    model = Glow(**TINY)
    blank = dequantize(torch.zeros(64, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="blank or constant"):
        model.initialize(blank)
    with pytest.raises(ValueError, match="blank or constant"):
        model.forward_kld(blank)  # the first training batch initialises through the same check
    assert not model.initialized
    model.forward_kld(real_digits)  # a lesson's own loop: its first real batch initialises
    assert model.initialized
    with torch.no_grad():
        s_before = [p.clone() for p in model.parameters()]
        model.log_prob(blank)  # an initialised model only scores it
        assert all(torch.equal(a, b) for a, b in zip(s_before, model.parameters(), strict=True))
    with pytest.raises(RuntimeError, match="already initialised"):
        model.initialize(real_digits)
    model.initialize(real_digits, force=True)


def test_train_glow_initialises_before_training(tmp_path, shared_data, monkeypatch) -> None:
    seen: list[bool] = []
    log_prob = Glow.log_prob

    def spy(self: Glow, x: torch.Tensor, y: object = None) -> torch.Tensor:
        seen.append(self.initialized)  # every score, from the first training step on
        return log_prob(self, x, y)

    monkeypatch.setattr(Glow, "log_prob", spy)
    recipe = Recipe(GlowConfig(**TINY), Optimiser("adam", lr=1e-3), Schedule(warmup_steps=2), 16)
    train_glow("mnist", 0.01, recipe, "cpu", tmp_path / "g.pt", eval_images=16, steps_per_epoch=2)
    assert seen and all(seen)


# ----------------------------------------------------------- careless inputs


def test_dequantize_careless_inputs() -> None:
    u = dequantize(np.full((2, 1, 4, 4), 7, dtype=np.uint8))  # numpy is fine
    assert isinstance(u, torch.Tensor) and u.shape == (2, 1, 4, 4)
    assert dequantize(torch.zeros(2, 4, 4, dtype=torch.uint8)).shape == (2, 1, 4, 4)
    for shape in [(28,), (28, 28), (1, 2, 1, 28, 28)]:
        with pytest.raises(ValueError, match=r"shape \(batch, C, H, W\) or \(batch, H, W\)"):
            dequantize(torch.zeros(shape, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8.*got float64"):
        dequantize(np.zeros((2, 1, 4, 4)))
    with pytest.raises(ValueError, match="got list"):
        dequantize([[0]])


def test_glow_careless_inputs(tiny: Glow) -> None:
    with pytest.raises(ValueError, match="x is float64 but the model is float32"):
        tiny.log_prob(torch.rand(2, 1, 28, 28, dtype=torch.float64))
    with pytest.raises(ValueError, match="x is an empty batch"):
        tiny.log_prob(torch.rand(0, 1, 28, 28))
    for n in (2.5, 0, "3"):
        with pytest.raises(ValueError, match="n must be an integer >= 1"):
            tiny.sample(n)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        tiny.sample_latents(-1)
    assert tiny.sample(np.int64(2)).shape == (2, 1, 28, 28)


def test_load_glow_refuses_weights_of_another_architecture(tmp_path, tiny: Glow) -> None:
    from course_utils.glow.model import glow_checkpoint_state

    other = Glow(levels=2, blocks=2, hidden=8)
    path = save_checkpoint(
        tmp_path / "x.pt", {"model": other.state_dict(), "extra": glow_checkpoint_state(tiny)}
    )
    with pytest.raises(CheckpointMismatchError) as info:
        load_glow(path)
    assert "unexpected" in str(info.value) and len(str(info.value).splitlines()) < 8


@pytest.mark.parametrize(
    ("flag", "value", "match"),
    [
        ("--minutes", "nan", "--minutes must be a finite number > 0"),
        ("--minutes", "0", "--minutes must be a finite number > 0"),
        ("--minutes", "-1", "--minutes"),
        ("--steps-per-epoch", "0", "--steps-per-epoch must be an integer >= 1"),
    ],
)
def test_cli_refuses_bad_budgets(tmp_path, capsys, flag: str, value: str, match: str) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--checkpoint", str(tmp_path / "x.pt"), flag, value])
    assert info.value.code == 2 and match in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_train_glow_refuses_bad_budgets(tmp_path) -> None:
    for kwargs, match in [
        ({"minutes": 0}, "minutes"),
        ({"minutes": float("nan")}, "minutes"),
        ({"steps_per_epoch": 0}, "steps_per_epoch"),
        ({"eval_images": 0}, "eval_images"),
    ]:
        with pytest.raises(ValueError, match=match):
            train_glow("mnist", device="cpu", checkpoint=tmp_path / "x.pt", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_to_resume_another_dataset(tmp_path, shared_data, capsys) -> None:
    from course_utils.core.checkpoints import load_checkpoint

    ckpt = tmp_path / "cli.pt"
    args = ["--device", "cpu", "--checkpoint", str(ckpt), "--steps-per-epoch", "2"]
    args += ["--eval-images", "16"]
    assert main([*args, "--dataset", "mnist", "--minutes", "0.005"]) == 0
    before = load_checkpoint(ckpt)["history"]
    capsys.readouterr()
    assert main([*args, "--dataset", "fashion-mnist", "--minutes", "0.02"]) == 2
    err = capsys.readouterr().err
    assert "dataset: saved 'mnist', here 'fashion-mnist'" in err and "--fresh" in err
    assert load_checkpoint(ckpt)["history"] == before
    # A 3-channel recipe on grey digits is refused before anything is written.
    other = tmp_path / "other.pt"
    assert main(["--checkpoint", str(other), "--recipe", "playground", "--minutes", "0.01"]) == 2
    assert "is for 3-channel images, but mnist has 1" in capsys.readouterr().err
    assert not other.exists()


def test_an_actnorm_the_data_does_not_reach_leaves_the_others_alone(
    real_digits: torch.Tensor,
) -> None:
    import normflows as nf

    model = Glow(**TINY)
    model.extra = nf.flows.ActNorm((1, 1, 1))  # outside the flow: no data pass reaches it
    with torch.no_grad():
        model.log_prob(real_digits[:32])
        assert model.initialized
        before = [p.clone() for p in model.flow.parameters()]
        model.log_prob(real_digits[32:])  # other statistics: a second initialisation would show
    assert all(torch.equal(a, b) for a, b in zip(before, model.flow.parameters(), strict=True))


def test_gated_glow_samples_thousands_of_finite_images(real_digits: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = Glow(
        blocks=1,
        hidden=8,
        net="gated",
        net_layers=1,
        full_res=2,
        full_res_hidden=8,
        logit_alpha=1e-5,
    )
    model.initialize(real_digits)
    with torch.no_grad():  # far from the identity start: large shifts and log-scales everywhere
        for p in model.parameters():
            p.add_(0.5 * torch.randn(p.shape))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no draw needed redrawing
        x = model.sample(4000, temperature=1.0)
    assert x.shape == (4000, 1, 28, 28) and bool(torch.isfinite(x).all())


def test_non_finite_draws_are_redrawn_or_refused(tiny: Glow, monkeypatch) -> None:
    real = tiny._draw
    calls = []

    def flaky(n, temperature, y=None):
        x = real(n, temperature, y)
        if not calls:
            x[::3] = float("nan")
        calls.append(n)
        return x

    monkeypatch.setattr(tiny, "_draw", flaky)
    with pytest.warns(RuntimeWarning, match="4 of 10 samples decoded to non-finite"):
        x = tiny.sample(10)
    assert bool(torch.isfinite(x).all()) and calls == [10, 4]
    monkeypatch.setattr(tiny, "_draw", lambda n, t, y: torch.full((n, 1, 28, 28), float("nan")))
    with pytest.raises(RuntimeError, match="stayed non-finite after 20 redraws"):
        tiny.sample(3)


def test_a_spectral_glow_reloads_and_older_checkpoints_keep_their_config(tmp_path, rng) -> None:
    from course_utils.glow.layers import SpectralGlowBase
    from course_utils.glow.model import glow_checkpoint_state

    model = Glow(shape=(3, 28, 28), base="spectral", logit_alpha=0.05, **TINY)
    assert all(isinstance(q, SpectralGlowBase) for q in model.flow.q0)
    x = torch.rand(3, 3, 28, 28, generator=rng) * 0.98 + 0.01
    with torch.no_grad():
        want = model.log_prob(x)
    extra = glow_checkpoint_state(model)
    assert extra["config"]["base"] == "spectral"
    path = save_checkpoint(tmp_path / "s.pt", {"model": model.state_dict(), "extra": extra})
    loaded, _ = load_glow(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded.log_prob(x), want, rtol=0, atol=0)
    # The default base is not written, so checkpoints from before the setting compare equal.
    assert "base" not in glow_checkpoint_state(Glow(**TINY))["config"]
    with pytest.raises(ValueError, match="base must be 'channel' or 'spectral'"):
        Glow(base="dct", **TINY)


# ------------------------------------------- every configuration it accepts, it can run


@pytest.mark.parametrize("net", ["conv", "gated"])
@pytest.mark.parametrize("logit", [None, 0.05])
def test_every_coupling_network_has_a_density_with_or_without_a_logit(
    rng: torch.Generator, net: str, logit: float | None
) -> None:
    model = Glow(levels=2, blocks=1, hidden=8, net=net, net_layers=1, logit_alpha=logit)
    x = torch.rand(4, 1, 28, 28, generator=rng) * 0.98 + 0.01
    log_p = model.log_prob(x)
    assert log_p.shape == (4,) and torch.isfinite(log_p).all()
    # Oracle: the change of variables term by term, the Jacobian's log-det plus the base's.
    z, log_det = model.flow.inverse_and_log_det(x)
    base = sum(q.log_prob(zi) for q, zi in zip(model.flow.q0, z, strict=True))
    torch.testing.assert_close(log_p, log_det + base, rtol=1e-5, atol=1e-3)


def test_the_course_recipe_without_a_logit_trains(tmp_path, shared_data) -> None:
    recipe = COURSE.replace(
        logit_alpha=None, blocks=1, hidden=8, full_res=0, dequantizer=0, net_layers=1
    )
    _, history = train_glow(
        "mnist",
        minutes=0.01,
        recipe=recipe,
        checkpoint=tmp_path / "x.pt",
        eval_images=8,
        steps_per_epoch=1,
        device="cpu",
    )
    assert history.steps >= 1 and all(math.isfinite(v) for v in history.eval)


@pytest.mark.parametrize(
    ("setting", "value", "match"),
    [
        ("logit_alpha", 0.6, r"logit_alpha must lie in \(0, 0.5\)"),
        ("logit_alpha", 0.5, r"logit_alpha must lie in \(0, 0.5\)"),
        ("logit_alpha", -0.1, r"logit_alpha must lie in \(0, 0.5\)"),
        ("logit_alpha", 0, r"logit_alpha must lie in \(0, 0.5\)"),
        ("logit_alpha", float("nan"), "logit_alpha must be a finite number"),
        ("full_res", -1, "full_res must be an integer >= 0"),
        ("dequantizer", -2, "dequantizer must be an integer >= 0"),
        ("levels", 0, "levels must be an integer >= 1"),
        ("net_layers", 0, "net_layers must be an integer >= 1"),
        ("full_res_hidden", 2.5, "full_res_hidden must be an integer"),
        ("blocks", (1, 0), "blocks must be a positive int"),
        ("shape", (1, 28), r"shape must be \(C, H, W\)"),
    ],
)
def test_impossible_configurations_are_refused_where_they_are_written(
    setting: str, value: object, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        Glow(**{**TINY, setting: value})
    with pytest.raises(ValueError, match=match):
        COURSE.replace(**{setting: value})


def test_a_logit_at_the_edges_of_its_range_keeps_every_pixel_finite() -> None:
    x = torch.zeros(2, 1, 28, 28)
    x[1] = 1.0
    for alpha in (1e-6, 0.49):
        model = Glow(levels=2, blocks=1, hidden=8, logit_alpha=alpha)
        with torch.no_grad():
            model.initialize(torch.rand(8, 1, 28, 28))
            assert torch.isfinite(model.log_prob(x)).all()
