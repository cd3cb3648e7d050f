"""Conditional inpainting: one masked image completed as each class of a class-conditional Glow."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils.glow.conditional import (
    ClassCompletions,
    complete_as_each_class,
    draw_class_samples,
    known_pixels_posterior,
)
from course_utils.inpaint import flow as fl


@pytest.fixture
def cond(make_tiny_cond_glow):
    """A tiny 3-class Glow whose classes differ (class means and scales far from zero)."""
    return make_tiny_cond_glow(3)


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


def test_sample_starts_are_each_classs_best_matching_sample_and_seeded(cond) -> None:
    image, mask = _problem()
    samples = draw_class_samples(cond, 6, generator=torch.Generator().manual_seed(1))
    assert samples.shape == (3, 6, 1, 28, 28)
    again = draw_class_samples(cond, 6, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(samples, again)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    draw_class_samples(cond, 2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)  # a generator leaves the global RNG alone
    got = complete_as_each_class(cond, image, mask, steps=0, samples=samples)
    # with no step taken, each class's hole is that of its sample closest on the known pixels
    known = (~mask).float()
    for k in range(3):
        misfit = [float(((s - image) ** 2 * known).sum()) for s in samples[k]]
        best = samples[k, min(range(6), key=misfit.__getitem__)]
        torch.testing.assert_close(got.completions[k][:, mask], best[:, mask], atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="samples must be"):
        complete_as_each_class(cond, image, mask, steps=0, samples=samples[:2])
    with pytest.raises(ValueError, match="temperature"):
        draw_class_samples(cond, 2, temperature=0)


def _by_hand(samples, image, mask, sigma, log_prior):
    """Bayes' rule with p(known | y) = mean over y's samples of N(known; sample, σ²), in float64."""
    scores = []
    for k in range(len(samples)):
        terms = [
            math.exp(-float(((s - image)[:, ~mask] ** 2).sum()) / (2 * sigma**2))
            for s in samples[k]
        ]
        scores.append(math.log(sum(terms) / len(terms)) + float(log_prior[k]))
    return torch.tensor(scores, dtype=torch.float64).log_softmax(0).float()


def test_known_pixels_posterior_is_bayes_rule_on_the_samples_by_hand(cond) -> None:
    image, mask = _problem()
    samples = draw_class_samples(cond, 5, generator=torch.Generator().manual_seed(0))
    prior = torch.tensor([0.7, 0.2, 0.1]).log()
    for sigma in (2.0, 4.0):  # large enough that exp() stays above float64's smallest number
        got = known_pixels_posterior(samples, image, mask, sigma, prior)
        torch.testing.assert_close(got, _by_hand(samples, image, mask, sigma, prior))
    # a sample that IS the image on its known pixels makes its class the most probable
    planted = samples.clone()
    planted[1, 0][:, ~mask] = image[:, ~mask]
    assert int(known_pixels_posterior(planted, image, mask, 0.2).argmax()) == 1
    # the pixels in the hole do not matter
    other = image.clone()
    other[:, mask] = 1.0
    torch.testing.assert_close(
        known_pixels_posterior(samples, other, mask), known_pixels_posterior(samples, image, mask)
    )
    result = complete_as_each_class(cond, image, mask, steps=2, samples=samples, log_prior=prior)
    torch.testing.assert_close(
        result.posterior, known_pixels_posterior(samples, image, mask, 0.2, prior)
    )
    torch.testing.assert_close(result.probabilities().sum(), torch.tensor(1.0))
    assert result.best == int(result.posterior.argmax())
    two = complete_as_each_class(cond, image, mask, classes=[2, 0], steps=2, samples=samples)
    assert two.classes.tolist() == [2, 0]
    torch.testing.assert_close(two.posterior, known_pixels_posterior(samples[[2, 0]], image, mask))
    with pytest.raises(ValueError, match="samples must be float"):
        known_pixels_posterior(samples[0], image, mask)
    with pytest.raises(ValueError, match="sigma"):
        known_pixels_posterior(samples, image, mask, sigma=0)


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
