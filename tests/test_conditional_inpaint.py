"""Conditional inpainting: one masked image completed as each class of a class-conditional Glow."""

from __future__ import annotations

import pytest
import torch

from course_utils.glow.conditional import ClassCompletions, complete_as_each_class
from course_utils.inpaint import flow as fl


@pytest.fixture
def cond(make_tiny_glow):
    """A tiny 3-class Glow whose classes differ (class means and scales far from zero)."""
    model = make_tiny_glow(num_classes=3)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for q in model.flow.q0:
            q.class_loc.copy_(0.5 * torch.randn(q.class_loc.shape, generator=gen))
            q.class_log_scale.copy_(0.2 * torch.randn(q.class_log_scale.shape, generator=gen))
    return model


def _problem() -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.zeros(1, 28, 28)
    image[:, 6:22, 12:16] = 0.9  # a bar, a "1"
    mask = torch.zeros(28, 28, dtype=torch.bool)
    mask[14:, :] = True  # the bottom half missing
    return image, mask


def test_each_class_fills_only_the_hole_and_climbs(cond) -> None:
    image, mask = _problem()
    result = complete_as_each_class(cond, image, mask, steps=15, init="zero")
    assert isinstance(result, ClassCompletions)
    assert result.completions.shape == (3, 1, 28, 28)
    assert result.classes.tolist() == [0, 1, 2]
    known = ~mask.expand(3, 1, 28, 28)
    assert torch.equal(result.completions[known], image.expand(3, 1, 28, 28)[known])
    assert float(result.completions.min()) >= 0 and float(result.completions.max()) <= 1
    # the classes complete differently
    assert not torch.allclose(result.completions[0], result.completions[1])
    with torch.no_grad():
        start = torch.where(mask, torch.zeros_like(image), image).expand(3, 1, 28, 28)
        start_log_p = cond.log_prob(start, torch.arange(3))
        torch.testing.assert_close(
            result.log_probs, cond.log_prob(result.completions, torch.arange(3))
        )
    assert bool((result.log_probs >= start_log_p).all())


def test_sample_starts_are_each_classs_own_and_seeded(cond) -> None:
    image, mask = _problem()
    a = complete_as_each_class(
        cond, image, mask, steps=0, generator=torch.Generator().manual_seed(1)
    )
    b = complete_as_each_class(
        cond, image, mask, steps=0, generator=torch.Generator().manual_seed(1)
    )
    c = complete_as_each_class(
        cond, image, mask, steps=0, generator=torch.Generator().manual_seed(2)
    )
    torch.testing.assert_close(a.completions, b.completions)
    assert not torch.allclose(a.completions, c.completions)
    # with no step taken, each class's hole is its sample's (the known pixels the image's)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    complete_as_each_class(cond, image, mask, steps=0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)  # a generator leaves the global RNG alone
    torch.manual_seed(7)
    want = cond.sample(3, temperature=0.4, y=torch.arange(3))
    torch.manual_seed(7)
    got = complete_as_each_class(cond, image, mask, steps=0, start_temperature=0.4)
    hole = mask.expand(3, 1, 28, 28)
    torch.testing.assert_close(got.completions[hole], want[hole], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="start_temperature"):
        complete_as_each_class(cond, image, mask, steps=0, start_temperature=0)


def test_the_posterior_is_bayes_rule_on_the_best_completions(cond) -> None:
    image, mask = _problem()
    result = complete_as_each_class(cond, image, mask, steps=5, init="zero")
    assert result.posterior.shape == (3,)
    torch.testing.assert_close(result.probabilities().sum(), torch.tensor(1.0))
    torch.testing.assert_close(result.posterior, result.log_probs.log_softmax(0))
    assert result.best == int(result.log_probs.argmax())
    # a prior adds to each class's score before normalising
    prior = torch.tensor([0.7, 0.2, 0.1]).log()
    with_prior = complete_as_each_class(cond, image, mask, log_prior=prior, steps=5, init="zero")
    torch.testing.assert_close(with_prior.posterior, (result.log_probs + prior).log_softmax(0))
    # a subset of classes, in the order asked, normalised among them
    two = complete_as_each_class(cond, image, mask, classes=[2, 0], steps=5, init="zero")
    assert two.classes.tolist() == [2, 0]
    torch.testing.assert_close(two.log_probs, result.log_probs[[2, 0]])
    torch.testing.assert_close(two.posterior.exp().sum(), torch.tensor(1.0))


def test_uint8_images_and_channel_masks_are_read_as_the_float_ones(cond) -> None:
    image, mask = _problem()
    eight_bit = (image * 255).round().to(torch.uint8)
    a = complete_as_each_class(cond, eight_bit, mask[None], steps=3, init="half")
    b = complete_as_each_class(cond, (eight_bit.float() + 0.5) / 256, mask, steps=3, init="half")
    torch.testing.assert_close(a.completions, b.completions)
    c = complete_as_each_class(cond, eight_bit[0], mask, steps=3, init="half")  # (H, W)
    torch.testing.assert_close(a.completions, c.completions)


def test_label_reaches_pixel_inpaint_and_lesson_08_is_unchanged(cond, tiny_glow) -> None:
    image, mask = _problem()
    x, m = image[None], mask[None, None]
    for k in range(3):
        got = fl.pixel_inpaint(cond, x, m, steps=2, label=k)
        with torch.no_grad():
            torch.testing.assert_close(
                got.log_prob[0], cond.log_prob(torch.where(m, 0.0, x), k), rtol=1e-5, atol=1e-2
            )
    unconditional = fl.pixel_inpaint(tiny_glow, x, m, steps=2)
    assert unconditional.log_prob.shape == (3, 1)
    with pytest.raises(ValueError, match="class-conditional"):
        fl.pixel_inpaint(cond, x, m, steps=1)
    with pytest.raises(ValueError, match="unconditional"):
        fl.pixel_inpaint(tiny_glow, x, m, steps=1, label=1)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"model": "unconditional"}, "class-conditional"),
        ({"image": torch.zeros(2, 1, 28, 28)}, "one image of shape"),
        ({"image": torch.full((1, 28, 28), float("nan"))}, "NaN"),
        ({"image": torch.full((1, 28, 28), 255.0)}, r"\[0, 1\]"),
        ({"mask": torch.zeros(28, 28, dtype=torch.bool)}, "nothing is masked"),
        ({"mask": torch.ones(28, 28, dtype=torch.bool)}, "everything is masked"),
        ({"mask": torch.zeros(14, 28, dtype=torch.bool)}, "mask must have shape"),
        ({"classes": [0, 3]}, r"classes must lie in 0\.\.2"),
        ({"classes": [1, 1]}, "repeat"),
        ({"classes": [0.5]}, "list of ints"),
        ({"log_prior": torch.zeros(2)}, "log_prior"),
        ({"steps": -1}, "steps"),
    ],
)
def test_bad_input_is_refused(cond, tiny_glow, change, match) -> None:
    image, mask = _problem()
    args = {"model": cond, "image": image, "mask": mask, "steps": 1, **change}
    if args["model"] == "unconditional":
        args["model"] = tiny_glow
    with pytest.raises(ValueError, match=match):
        complete_as_each_class(**args)
