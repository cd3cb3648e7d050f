"""Anomaly scores of lesson 10: ROC-AUC against sklearn, complexity, typicality, per-image bpd."""

from __future__ import annotations

import math
import zlib

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.patches import Rectangle
from oracles import perturb
from sklearn import metrics

from course_utils.anomaly import (
    FASHION_CLASSES,
    auc_against,
    auc_table,
    complexity_corrected,
    compressed_bits_per_dim,
    fit_pixel_model,
    image_bits_per_dim,
    nearest_neighbour_labels,
    pixel_bits_per_dim,
    roc_auc,
    roc_curve,
    typicality,
    typicality_auc,
)
from course_utils.anomaly_plots import (
    bulk_range,
    complexity_scatter,
    remedy_histograms,
    roc_panels,
    roc_plot,
    score_histograms,
    temperature_figure,
    typicality_curves,
)
from course_utils.glow.model import Glow, dequantize

pytestmark = pytest.mark.usefixtures("rng")


# ------------------------------------------------------------------- ROC-AUC


@pytest.mark.parametrize("levels", [3, 20, None])  # few levels: many ties; None: continuous
def test_roc_auc_matches_sklearn(levels) -> None:
    labels = torch.randint(0, 2, (300,)).numpy()
    labels[:2] = [0, 1]  # both classes for sure
    scores = torch.randn(300).numpy() + 0.7 * labels
    if levels is not None:
        scores = np.round(scores * levels / 4) / levels  # heavy ties
        assert len(np.unique(scores)) < 300
    assert roc_auc(labels, scores) == pytest.approx(
        metrics.roc_auc_score(labels, scores), abs=1e-12
    )


def test_roc_auc_by_counting_pairs() -> None:
    # the definition: P(positive > negative) + P(tie) / 2, over every pair
    neg, pos = np.array([0.0, 1.0, 1.0, 3.0]), np.array([1.0, 2.0, 3.0])
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    assert auc_against(neg, pos) == pytest.approx(sum(pairs) / len(pairs))
    assert auc_against(pos, neg) == pytest.approx(1 - sum(pairs) / len(pairs))


def test_roc_curve_matches_sklearn_and_integrates_to_auc() -> None:
    labels = torch.randint(0, 2, (200,)).numpy()
    labels[:2] = [0, 1]
    scores = np.round(torch.randn(200).numpy() + labels, 1)  # with ties
    fpr, tpr = roc_curve(labels, scores)
    ref_fpr, ref_tpr, _ = metrics.roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids
    assert area == pytest.approx(roc_auc(labels, scores), abs=1e-12)


def test_roc_auc_extremes() -> None:
    assert roc_auc([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [3, 4, 1, 2]) == 0.0
    assert roc_auc([0, 0, 1, 1], [5, 5, 5, 5]) == 0.5


@pytest.mark.parametrize(
    "labels,scores,match",
    [
        ([0, 0, 0], [0.1, 0.2, 0.3], "single class"),
        ([1, 1], [0.1, 0.2], "single class"),
        ([0, 1, 1], [0.1, float("nan"), 0.3], "scores holds 1 NaN"),
        ([0, 1, 1], [0.1, 0.2], r"scores must have the shape of labels \(3,\), got \(2,\)"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "labels must be 0"),
        ([[0, 1]], [[0.1, 0.2]], r"labels must have shape \(n,\).*got \(1, 2\)"),
        ([], [], r"labels must have shape \(n,\) with n >= 1, got \(0,\)"),
    ],
)
def test_roc_auc_bad_inputs(labels, scores, match) -> None:
    with pytest.raises(ValueError, match=match):
        roc_auc(labels, scores)


# ---------------------------------------------------------------- complexity


def test_compressed_bits_per_dim_by_hand() -> None:
    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    images[1] = 0  # blank
    images[2, :, :14] = 0  # half blank
    got = compressed_bits_per_dim(images)
    for img, value in zip(images, got, strict=True):
        by_hand = len(zlib.compress(bytes(img.flatten().tolist()), 9)) * 8 / 784
        assert float(value) == pytest.approx(by_hand)
    # noise cannot be compressed below 8 bits per pixel, and DEFLATE adds little to it
    assert 8.0 < got[0] < 8.2
    assert got[1] < 0.2  # 784 equal bytes
    assert got[1] < got[2] < got[0]
    # a channel-less batch gives the same values
    torch.testing.assert_close(compressed_bits_per_dim(images[:, 0]), got)


def test_compressed_bits_per_dim_bad_inputs() -> None:
    with pytest.raises(ValueError, match="must be uint8 images.*float32"):
        compressed_bits_per_dim(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"got \(28, 28\)"):
        compressed_bits_per_dim(torch.zeros(28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="level must be in 0..9"):
        compressed_bits_per_dim(torch.zeros(1, 28, 28, dtype=torch.uint8), level=10)


def test_complexity_corrected() -> None:
    bpd, comp = torch.rand(10) * 5, torch.rand(10) * 3
    torch.testing.assert_close(complexity_corrected(bpd, comp), bpd - comp)
    with pytest.raises(
        ValueError, match=r"complexity must have the shape of bpd \(10,\), got \(9,\)"
    ):
        complexity_corrected(bpd, comp[:9])


# --------------------------------------------------------------- pixel model


def test_pixel_model_by_hand() -> None:
    # 4 training images of 2 pixels: pixel 0 is always 0, pixel 1 is 0, 0, 255, 7
    train = torch.tensor([[0, 0], [0, 0], [0, 255], [0, 7]], dtype=torch.uint8)[:, None, None, :]
    log_p = fit_pixel_model(train, alpha=0.5)
    assert log_p.shape == (2, 256)
    torch.testing.assert_close(log_p.exp().sum(1), torch.ones(2))  # two distributions
    # the image (0, 255): P = (4 + 0.5) / (4 + 128) for pixel 0, (1 + 0.5) / 132 for pixel 1
    by_hand = -(math.log2(4.5 / 132) + math.log2(1.5 / 132)) / 2
    got = pixel_bits_per_dim(log_p, torch.tensor([[[[0, 255]]]], dtype=torch.uint8))
    assert float(got[0]) == pytest.approx(by_hand, rel=1e-6)
    # a value never seen costs the most, 8 bits/dim is what a uniform model would charge
    unseen = pixel_bits_per_dim(log_p, torch.tensor([[[[9, 9]]]], dtype=torch.uint8))
    assert float(unseen[0]) > 8 > float(got[0])


def test_pixel_model_bad_inputs() -> None:
    log_p = fit_pixel_model(torch.zeros(3, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(
        ValueError, match=r"log_probs must have shape \(196, 256\).*got \(784, 256\)"
    ):
        pixel_bits_per_dim(log_p, torch.zeros(2, 1, 14, 14, dtype=torch.uint8))
    with pytest.raises(ValueError, match="alpha must be positive"):
        fit_pixel_model(torch.zeros(3, 28, 28, dtype=torch.uint8), alpha=0.0)
    with pytest.raises(ValueError, match="must be uint8"):
        fit_pixel_model(torch.zeros(3, 28, 28))


# ---------------------------------------------------------------- typicality


def test_typicality_per_image_and_per_group() -> None:
    bpd = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0])
    torch.testing.assert_close(typicality(bpd, 3.0), (bpd - 3.0).abs())
    # groups of 3 from 7 values: 2 disjoint groups of a reproducible shuffle, one value dropped
    g = typicality(bpd, 3.0, group_size=3, generator=torch.Generator().manual_seed(0))
    order = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    by_hand = [abs(sum(float(bpd[i]) for i in order[k * 3 : k * 3 + 3]) / 3 - 3.0) for k in (0, 1)]
    assert g.tolist() == pytest.approx(by_hand)
    # a group of every value scores the distance of the overall mean
    whole = typicality(bpd, 3.0, group_size=7)
    assert float(whole[0]) == pytest.approx(abs(float(bpd.mean()) - 3.0), rel=1e-6)


def test_typicality_separates_a_shifted_set_better_with_groups() -> None:
    # in: bpd ~ N(3, 1); out: N(4, 1). One image hardly tells them apart; the mean of 25
    # images has a standard deviation of 0.2, and 1.0 is five of them.
    inside, outside = 3 + torch.randn(2000), 4 + torch.randn(2000)
    single = auc_against(typicality(inside, 3.0), typicality(outside, 3.0))
    grouped = auc_against(
        typicality(inside, 3.0, 25, torch.Generator().manual_seed(1)),
        typicality(outside, 3.0, 25, torch.Generator().manual_seed(2)),
    )
    assert 0.55 < single < 0.75
    assert grouped > 0.98
    assert typicality_auc(inside, outside, 3.0, 25, seed=1) == grouped  # seeds 1 and 2


def test_typicality_bad_inputs() -> None:
    with pytest.raises(ValueError, match="group_size must be between 1 and the number"):
        typicality([1.0, 2.0], 1.0, group_size=3)
    with pytest.raises(ValueError, match="reference must be a finite number"):
        typicality([1.0, 2.0], float("nan"))
    with pytest.raises(ValueError, match="bpd holds 1 NaN"):
        typicality([1.0, float("inf")], 1.0)


# ---------------------------------------------------------- per-image bits/dim


def test_image_bits_per_dim_agrees_with_glow(rng: torch.Generator, tiny_glow: Glow) -> None:
    model = perturb(tiny_glow, 0.05)
    x = dequantize(torch.randint(0, 256, (7, 1, 28, 28), dtype=torch.uint8), rng)
    with torch.no_grad():
        lp = model.log_prob(x)
    per_image = image_bits_per_dim(model, x, batch_size=3)  # batches of 3, 3 and 1
    assert per_image.shape == (7,)
    assert float(per_image.mean()) == pytest.approx(model.bits_per_dim(x), rel=1e-5)
    by_hand = (-lp / 784 + math.log(256)) / math.log(2)
    torch.testing.assert_close(per_image, by_hand, rtol=1e-5, atol=1e-5)
    assert len(set(per_image.tolist())) == 7  # images differ, and so do their scores


def test_image_bits_per_dim_of_8_bit_images_uses_the_models_dequantizer(
    rng: torch.Generator, make_tiny_glow
) -> None:
    model = perturb(make_tiny_glow(dequantizer=2, dequantizer_hidden=4), 0.05)
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8, generator=rng)
    per_image = image_bits_per_dim(model, images, 2, torch.Generator().manual_seed(3))
    # by hand: the dequantizer's u and log q, drawn with the same noise, batch by batch
    generator, nats = torch.Generator().manual_seed(3), []
    with torch.no_grad():
        for part in images.split(2):
            u, log_q = model.dequantizer(part, generator)
            nats.append(model.log_prob(u) - log_q)
    by_hand = (-torch.cat(nats) / 784 + math.log(256)) / math.log(2)
    torch.testing.assert_close(per_image, by_hand, rtol=1e-5, atol=1e-5)
    # the model card's figure is the mean of the same scores
    assert float(per_image.mean()) == pytest.approx(model.bits_per_dim(images, 2, 3), rel=1e-5)
    # uniform noise is another (looser for a trained dequantizer) bound: not the same number
    uniform = image_bits_per_dim(model, dequantize(images, torch.Generator().manual_seed(3)))
    assert not torch.allclose(per_image, uniform)


def test_image_bits_per_dim_of_8_bit_images_without_a_dequantizer(
    rng: torch.Generator, tiny_glow: Glow
) -> None:
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8, generator=rng)
    torch.testing.assert_close(
        image_bits_per_dim(tiny_glow, images, generator=torch.Generator().manual_seed(1)),
        image_bits_per_dim(tiny_glow, dequantize(images, torch.Generator().manual_seed(1))),
    )
    with pytest.raises(ValueError, match="has no dequantized_log_prob"):
        image_bits_per_dim(tiny_glow.flow, images)


def test_image_bits_per_dim_bad_inputs(tiny_glow: Glow) -> None:
    model = tiny_glow
    with pytest.raises(ValueError, match=r"x must have shape \(n, C, H, W\).*got \(28, 28\)"):
        image_bits_per_dim(model, torch.rand(28, 28))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 1, 28, 28\)"):
        image_bits_per_dim(model, torch.rand(2, 1, 14, 14))
    with pytest.raises(ValueError, match="batch_size must be positive"):
        image_bits_per_dim(model, torch.rand(2, 1, 28, 28), batch_size=0)


# ----------------------------------------------------------- table, figures


def test_auc_table_is_aligned() -> None:
    text = auc_table(
        {"bpd": {"MNIST": 0.0512, "noise": 1.0}, "bpd - zlib": {"MNIST": 0.9, "noise": 1.0}}
    )
    lines = text.splitlines()
    assert lines[1].split() == ["bpd", "0.051", "1.000"]
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header
    with pytest.raises(ValueError, match="row 'b' has columns"):
        auc_table({"a": {"MNIST": 0.5}, "b": {"noise": 0.5}})


def test_figures_draw_and_label() -> None:
    a, b = torch.randn(100), torch.randn(100) + 1
    spike = torch.full((50,), 2.0)
    fig = score_histograms({"in": a, "out": b, "spike": spike}, xlim=(-1.0, 5.0), ymax=1.0)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    outside = int((a < -1).sum())
    assert labels[0] == f"in (mean {a.mean():.2f}), {outside} off the axis"
    assert labels[2] == "spike (mean 2.00), peak above the axis"
    # the filled bars are densities of the whole set: their area is the fraction on the axis
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]  # the outlines are polygons
    area = sum(p.get_height() * p.get_width() for p in bars)
    assert area == pytest.approx(1 - outside / 100, abs=1e-9)
    assert ax.get_ylim() == (0.0, 1.0)
    plt.close(fig)
    fig = roc_plot({"score": (a, b)})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0] == f"score: AUC {auc_against(a, b):.3f}"
    plt.close(fig)


def test_lesson_figures_draw_what_they_are_given(rng: torch.Generator) -> None:
    sets = ["in", "out"]
    bpd = {k: torch.randn(60, generator=rng) + i for i, k in enumerate(sets)}
    complexity = {k: torch.rand(60, generator=rng) * 5 for k in sets}
    bpd["out"][0] = 20.0  # above the axes: the title counts it
    fig = complexity_scatter(complexity, bpd, limit=12.0)
    assert "1 image(s) above 12 bits/dim not shown" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="bpd must name the sets"):
        complexity_scatter(complexity, {"in": bpd["in"]})
    fig = remedy_histograms(bpd, {k: v.abs() for k, v in bpd.items()}, 3.0)
    assert len(fig.axes) == 2 and "3.00" in fig.axes[1].get_xlabel()
    plt.close(fig)
    fig = typicality_curves([1, 5, 10], {"out": [0.6, 0.8, 0.9]}, title="t")
    assert list(fig.axes[0].lines[0].get_ydata()) == [0.6, 0.8, 0.9]
    plt.close(fig)
    with pytest.raises(ValueError, match="has 2 values for 3 group sizes"):
        typicality_curves([1, 5, 10], {"out": [0.6, 0.8]})
    fig = roc_panels({"raw": bpd, "neg": {k: -v for k, v in bpd.items()}}, "in", ["out"])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    auc = auc_against(bpd["in"], bpd["out"])
    assert labels[:2] == [f"raw: AUC {auc:.3f}", f"neg: AUC {1 - auc:.3f}"]
    plt.close(fig)
    fig = temperature_figure(
        {"T = 1": [0.1] * 10, "T = 0.7": [0.2] * 5 + [0.0] * 5},
        FASHION_CLASSES,
        {"row": torch.rand(10, 1, 28, 28, generator=rng)},
    )
    bars = [p.get_height() for p in fig.axes[0].patches]
    assert bars == [0.1] * 10 + [0.2] * 5 + [0.0] * 5
    plt.close(fig)
    assert bulk_range({"a": [0.0, 1.0, 2.0]}, tail=0.0) == (-0.2, 2.2)


def test_nearest_neighbour_labels_vote(rng: torch.Generator) -> None:
    # two clusters of 8-pixel "images", labelled 0 and 1, and queries near each
    centres = torch.stack([torch.zeros(8), torch.ones(8)])
    reference = centres.repeat_interleave(10, 0) + 0.1 * torch.randn(20, 8, generator=rng)
    labels = torch.tensor([0] * 10 + [1] * 10)
    queries = centres + 0.1 * torch.randn(2, 8, generator=rng)
    got = nearest_neighbour_labels(queries.view(2, 1, 2, 4), reference.view(20, 1, 2, 4), labels)
    assert got.tolist() == [0, 1]
    # one mislabelled neighbour is outvoted with k = 5, but decides alone with k = 1
    labels[reference[:10].sub(queries[0]).norm(dim=1).argmin()] = 1
    images, ref = queries.view(2, 1, 2, 4), reference.view(20, 1, 2, 4)
    assert nearest_neighbour_labels(images, ref, labels, k=5).tolist() == [0, 1]
    assert nearest_neighbour_labels(images, ref, labels, k=1).tolist() == [1, 1]
    # uint8 images are compared as [0, 1] floats
    u8 = (reference.clamp(0, 1) * 255).round().to(torch.uint8).view(20, 1, 2, 4)
    torch.testing.assert_close(
        nearest_neighbour_labels(u8, u8, labels, batch_size=3),
        nearest_neighbour_labels(u8.float() / 255, u8.float() / 255, labels),
    )
    with pytest.raises(ValueError, match="k must be at most"):
        nearest_neighbour_labels(images, ref, labels, k=21)
    with pytest.raises(ValueError, match=r"labels must have shape \(20,\)"):
        nearest_neighbour_labels(images, ref, labels[:5])
    with pytest.raises(ValueError, match="images have 8 pixels each but reference images 4"):
        nearest_neighbour_labels(images, ref[:, :, :1], labels)
