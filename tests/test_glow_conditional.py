"""The class-conditional Glow: its base, its labels, training, checkpoints and measurements."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from normflows.distributions import GlowBase
from torch import nn

from course_utils import pretrained
from course_utils.core.data import image_splits
from course_utils.glow import measure, recipes
from course_utils.glow import train as glow_train
from course_utils.glow.layers import ClassConditionalBase
from course_utils.glow.measure import bayes_accuracy, bayes_posterior, drawn_as_asked
from course_utils.glow.model import GlowConfig, glow_checkpoint_state, glow_from_state
from course_utils.glow.recipes import COURSE, COURSE_COND, COURSE_LONG, Optimiser, Recipe, Schedule
from course_utils.glow.train import hybrid_loss, label_splits, load_glow, train_glow
from course_utils.release import make_glow

TINY_COND = {"num_classes": 10}


@pytest.fixture
def cond(make_tiny_cond_glow):
    """A tiny conditional Glow whose class means and log-scales are far from zero."""
    return make_tiny_cond_glow(10)


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _gauss(z: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log N(z; loc, exp(log_scale)²), summed over all but the first axis, by hand."""
    log_scale = log_scale.expand_as(z)
    d = (z - loc) / log_scale.exp()
    return (-0.5 * math.log(2 * math.pi) - log_scale - 0.5 * d**2).flatten(1).sum(1)


def test_log_prob_is_the_flow_plus_each_levels_class_conditional_base(cond) -> None:
    x, y = _images(6), torch.tensor([0, 3, 9, 3, 1, 7])
    z, log_det = cond.flow.inverse_and_log_det(x)
    by_hand = log_det.clone()
    for q, zi in zip(cond.flow.q0, z, strict=True):
        base = q.base  # normflows' GlowBase: mean and log-scale per channel, stored scaled
        loc = base.loc * torch.exp(base.loc_logs * base.logscale_factor)
        log_scale = base.log_scale * torch.exp(base.log_scale_logs * base.logscale_factor)
        # z = m_y + exp(s_y) z0, z0 ~ GlowBase: a Gaussian of mean m_y + exp(s_y) loc
        # and log-scale s_y + log_scale
        m, s = q.class_loc[y], q.class_log_scale[y]
        by_hand = by_hand + _gauss(zi, m + s.exp() * loc, s + log_scale)
    with torch.no_grad():
        torch.testing.assert_close(cond.log_prob(x, y), by_hand, rtol=1e-5, atol=1e-3)
        every = cond.class_log_probs(x)
        assert every.shape == (6, 10)
        torch.testing.assert_close(every[torch.arange(6), y], cond.log_prob(x, y))
        # the classes matter: another class gives another density
        assert not torch.allclose(cond.log_prob(x, y), cond.log_prob(x, (y + 1) % 10))


def test_conditional_base_draws_what_it_scores() -> None:
    torch.manual_seed(0)
    q = ClassConditionalBase(GlowBase((2, 3, 3)), num_classes=4)
    with torch.no_grad():
        q.class_loc.normal_()
        q.class_log_scale.normal_(std=0.3)
    y = torch.tensor([0, 1, 2, 3, 3])
    z, log_p = q(5, y)
    assert z.shape == (5, 2, 3, 3)
    torch.testing.assert_close(log_p, q.log_prob(z, y), rtol=1e-5, atol=1e-4)
    # many draws of one class have its mean and spread
    z, _ = q(20000, torch.full((20000,), 2))
    torch.testing.assert_close(z.mean(0), q.class_loc[2].detach(), atol=0.1, rtol=0)
    torch.testing.assert_close(
        z.std(0), q.class_log_scale[2].detach().exp(), atol=0.05 * 3, rtol=0.05
    )
    with pytest.raises(ValueError, match="needs the classes"):
        q.log_prob(z[:2])


def test_sample_by_class_shapes_and_round_trip(cond) -> None:
    assert cond.sample(4, temperature=0.7, y=3).shape == (4, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 9, 9])
    x = cond.sample(5, y=y)
    assert x.shape == (5, 1, 28, 28) and bool(torch.isfinite(x).all())
    latents = cond.sample_latents(5, temperature=0.5, y=y)
    assert [tuple(z.shape[1:]) for z in latents] == cond.latent_shapes()
    # the flow is the same for every class: data -> latents -> data is exact
    xs = _images(3).clamp(0.01, 0.99)
    with torch.no_grad():
        torch.testing.assert_close(cond.decode(cond.encode(xs)), xs, atol=1e-4, rtol=0)
    # at a very low temperature, the samples of a class are its mean latent decoded
    torch.manual_seed(0)
    cold = cond.sample(3, temperature=1e-4, y=5)
    torch.testing.assert_close(cold[0], cold[2], atol=1e-3, rtol=0)
    assert not torch.allclose(cold[0], cond.sample(1, temperature=1e-4, y=6)[0], atol=1e-3)


def test_gradient_reaches_the_class_parameters_of_the_classes_seen(make_tiny_glow) -> None:
    model = make_tiny_glow(**TINY_COND).train()
    images = (_images(4) * 255).to(torch.uint8)
    loss = -model.dequantized_log_prob(images, y=torch.tensor([2, 2, 5, 7])).mean()
    loss.backward()
    for q in model.flow.q0:
        for p in (q.class_loc, q.class_log_scale):
            seen = p.grad.flatten(1).abs().sum(1) > 0
            assert seen.tolist() == [k in (2, 5, 7) for k in range(10)]


def test_labels_are_checked(cond, tiny_glow) -> None:
    x = _images(3)
    with pytest.raises(ValueError, match="class-conditional .* give the classes y"):
        cond.log_prob(x)
    with pytest.raises(ValueError, match="integer classes, got dtype float32"):
        cond.log_prob(x, torch.tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="integer classes, got dtype bool"):
        cond.log_prob(x, torch.tensor([True, False, True]))
    with pytest.raises(ValueError, match=r"shape \(3,\).*got shape \(2,\)"):
        cond.log_prob(x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"shape \(3,\).*got shape \(3, 1\)"):
        cond.log_prob(x, torch.tensor([[1], [2], [3]]))
    with pytest.raises(ValueError, match=r"0\.\.9 .*from 1 to 10"):
        cond.log_prob(x, torch.tensor([1, 2, 10]))
    with pytest.raises(ValueError, match=r"0\.\.9 .*from -1 to -1"):
        cond.sample(2, y=-1)
    with pytest.raises(ValueError, match="give the classes"):
        cond.sample(2)
    with pytest.raises(ValueError, match="give the classes"):
        cond.bits_per_dim((x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match="unconditional"):
        tiny_glow.log_prob(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="unconditional"):
        tiny_glow.sample(2, y=1)
    with pytest.raises(ValueError, match="class-conditional"):
        tiny_glow.class_log_probs(x)
    # a list of ints is classes too
    torch.testing.assert_close(
        cond.log_prob(x, [1, 2, 3]), cond.log_prob(x, torch.tensor([1, 2, 3]))
    )


@pytest.mark.parametrize("bad", [1, -2, 2.0, True, "10"])
def test_num_classes_is_checked(bad) -> None:
    with pytest.raises(ValueError, match="num_classes"):
        GlowConfig(num_classes=bad)


def test_unconditional_recipes_and_checkpoints_are_unchanged() -> None:
    assert GlowConfig(num_classes=0) == GlowConfig() and GlowConfig().num_classes is None
    assert COURSE.replace(num_classes=0) == COURSE
    assert "num_classes" not in COURSE.as_dict()["model"]
    assert COURSE_COND.as_dict()["model"]["num_classes"] == 10
    assert Recipe.from_dict(COURSE_COND.as_dict()) == COURSE_COND
    assert COURSE_COND.replace(num_classes=None, class_loss=None) == COURSE_LONG
    assert COURSE_COND.digest() != COURSE_LONG.digest()
    assert recipes.RECIPES["course-cond"] is COURSE_COND


def test_checkpoint_state_rebuilds_the_conditional_glow(cond, tiny_glow) -> None:
    assert "num_classes" not in glow_checkpoint_state(tiny_glow)["config"]
    state = glow_checkpoint_state(cond)
    assert state["config"]["num_classes"] == 10
    again = glow_from_state(state)
    again.load_state_dict(cond.state_dict())
    x, y = _images(4), torch.tensor([4, 4, 0, 1])
    with torch.no_grad():
        torch.testing.assert_close(again.log_prob(x, y), cond.log_prob(x, y))


def test_train_glow_trains_on_classes_and_resumes(tmp_path: Path, shared_data) -> None:
    recipe = Recipe(
        GlowConfig(levels=2, blocks=1, hidden=8, num_classes=10),
        Optimiser("adam", lr=1e-3),
        Schedule(warmup_steps=2),
        16,
    )
    ckpt = tmp_path / "cond.pt"
    _, first = train_glow("mnist", 0.05, recipe, "cpu", ckpt, eval_images=16, steps_per_epoch=2)
    assert first.steps >= 2 and all(math.isfinite(v) for v in first.eval)
    model, state = load_glow(ckpt)
    assert model.num_classes == 10 and state["extra"]["recipe"] == "custom"
    # the curve is the bits/dim of p(x | y) on the first test digits, given their classes
    test = image_splits("mnist")[1][:16]
    assert model.bits_per_dim(test, seed=1, y=label_splits("mnist")[1][:16]) == pytest.approx(
        first.eval[-1], abs=1e-4
    )
    _, more = train_glow("mnist", 0.09, recipe, "cpu", ckpt, eval_images=16, steps_per_epoch=2)
    assert more.steps > first.steps and more.eval[: len(first.eval)] == first.eval


def _hybrid_by_hand(log_p: torch.Tensor, y: torch.Tensor, weight: float) -> float:
    """Row by row in float64: -log p(x|y) + weight · (log Σ_k p(x|k) − log p(x|y))."""
    total = 0.0
    for row, k in zip(log_p.double(), y.tolist(), strict=True):
        peak = float(row.max())
        log_sum = peak + math.log(sum(math.exp(float(v) - peak) for v in row))
        total += -float(row[k]) + weight * (log_sum - float(row[k]))
    return total / len(y)


@pytest.mark.parametrize("weight", [0.0, 1.0, 300.0])
def test_hybrid_loss_is_the_nll_plus_the_weighted_bayes_cross_entropy(rng, weight) -> None:
    log_p = torch.randn(7, 10, generator=rng) * 30 - 800  # nats of 28×28 digits: far below 0
    y = torch.randint(0, 10, (7,), generator=rng)
    got = hybrid_loss(log_p, y, weight)
    assert got.shape == () and float(got) == pytest.approx(_hybrid_by_hand(log_p, y, weight))
    # a uniform prior: a constant added to one image's every class changes only its NLL term
    shifted = log_p.clone()
    shifted[0] += 5.0
    assert float(hybrid_loss(shifted, y, weight) - got) == pytest.approx(-5.0 / 7, abs=1e-3)
    # the cross-entropy sends a gradient to every class; the NLL only to the asked one
    close = (log_p - log_p.mean(1, keepdim=True)).div(30).requires_grad_(True)  # no underflow
    hybrid_loss(close, y, weight).backward()
    touched = close.grad.abs() > 0
    assert touched.sum(1).tolist() == [10 if weight else 1] * 7


@pytest.mark.parametrize(
    ("log_p", "y", "weight", "match"),
    [
        (torch.zeros(4), torch.zeros(4, dtype=torch.long), 1.0, "log_p must be a .batch, K."),
        (torch.zeros(4, 1), torch.zeros(4, dtype=torch.long), 1.0, "K >= 2"),
        (torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long), 1.0, "float"),
        (torch.zeros(4, 3), torch.zeros(3, dtype=torch.long), 1.0, r"y must be a \(4,\)"),
        (torch.zeros(4, 3), torch.zeros(4), 1.0, "integer classes"),
        (torch.zeros(4, 3), torch.tensor([0, 1, 2, 3]), 1.0, r"0\.\.2"),
        (torch.zeros(4, 3), torch.tensor([0, -1, 2, 1]), 1.0, "from -1 to 2"),
        (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), -0.5, "weight"),
        (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), float("nan"), "weight"),
    ],
)
def test_hybrid_loss_refuses_bad_input(log_p, y, weight, match) -> None:
    with pytest.raises(ValueError, match=match):
        hybrid_loss(log_p, y, weight)


def test_train_glow_adds_the_class_loss_with_hybrid_loss(
    tmp_path, shared_data, monkeypatch
) -> None:
    calls = []

    def spy(log_p, y, weight):
        calls.append(weight)
        return hybrid_loss(log_p, y, weight)

    monkeypatch.setattr(glow_train, "hybrid_loss", spy)
    recipe = Recipe(
        GlowConfig(levels=1, blocks=1, hidden=4, num_classes=10),
        Optimiser("adam", lr=1e-3),
        Schedule(class_loss=(2, 7.0)),
        8,
    )
    _, history = train_glow(
        "mnist", 0.05, recipe, "cpu", tmp_path / "c.pt", eval_images=8, steps_per_epoch=2
    )
    # the first two steps are the plain likelihood, every later one the hybrid loss
    assert history.steps > 2 and calls == [7.0] * (history.steps - 2)


class _SaysThree(nn.Module):
    """A stand-in digit classifier, sure that every image is a 3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.full((len(x), 10), -20.0)
        logits[:, 3] = 20.0
        return logits


def test_drawn_as_asked_counts_the_samples_labelled_as_asked(cond, tiny_glow) -> None:
    result = drawn_as_asked(cond, _SaysThree(), samples_per_class=4, temperature=0.7)
    assert result.per_class == tuple(1.0 if k == 3 else 0.0 for k in range(10))
    assert result.share == pytest.approx(0.1) and result.samples_per_class == 4
    assert result.worst[1] == 0.0 and "drawn as asked" in str(result)
    with pytest.raises(ValueError, match="class-conditional"):
        drawn_as_asked(tiny_glow, _SaysThree())
    with pytest.raises(ValueError, match="samples_per_class"):
        drawn_as_asked(cond, _SaysThree(), samples_per_class=0)
    with pytest.raises(ValueError, match="confidence"):
        drawn_as_asked(cond, _SaysThree(), confidence=1.0)


def test_bayes_rule_is_the_normalised_joint(cond) -> None:
    images = (_images(5) * 255).to(torch.uint8)
    post = bayes_posterior(cond, images, seed=4)
    assert post.shape == (5, 10)
    torch.testing.assert_close(post.exp().sum(1), torch.ones(5))
    with torch.no_grad():
        joint = cond.dequantized_class_log_probs(images, torch.Generator().manual_seed(4))
    torch.testing.assert_close(post, joint.log_softmax(1), rtol=1e-5, atol=1e-4)
    # a prior sure of class 2 outweighs any likelihood: every image is read as a 2
    prior = torch.full((10,), -1e4)
    prior[2] = 0.0
    labels = torch.tensor([2, 0, 2, 5, 2])
    assert bayes_accuracy(cond, images, labels, log_prior=prior) == pytest.approx(3 / 5)
    # the classifier's accuracy is its argmax against the labels
    uniform = bayes_accuracy(cond, images, post.argmax(1), seed=4)
    assert uniform == 1.0
    with pytest.raises(ValueError, match="log_prior"):
        bayes_posterior(cond, images, log_prior=torch.zeros(3))
    with pytest.raises(ValueError, match="labels"):
        bayes_accuracy(cond, images, labels[:2])
    with pytest.raises(ValueError, match="uint8"):
        bayes_posterior(cond, images.float())


@pytest.mark.slow
def test_make_glow_ships_a_conditional_glow(tmp_path, shared_data, monkeypatch) -> None:
    splits = measure.image_splits
    monkeypatch.setattr(
        measure, "image_splits", lambda name: (splits(name)[0], splits(name)[1][:200])
    )
    tiny = Recipe(
        GlowConfig(levels=2, blocks=1, hidden=8, num_classes=10),
        Optimiser("adam", lr=1e-3),
        Schedule(warmup_steps=2),
        16,
    )
    monkeypatch.setitem(recipes.RECIPES, "tiny-cond", tiny)
    info = make_glow("glow-tiny-cond", "mnist", "tiny-cond", 0.02, "cpu", tmp_path)
    assert info["recipe_settings"]["model"]["num_classes"] == 10
    assert len(info["drawn_as_asked_T0.7"]["per_class"]) == 10
    assert 0 <= info["bayes_test_accuracy"] <= 1 and "recognisable_share" not in info
    model = pretrained.load("glow-tiny-cond", tmp_path)
    assert model.num_classes == 10
    assert "drawn_as_asked_share" in pretrained.table(tmp_path)
