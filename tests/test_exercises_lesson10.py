"""Lesson 10's exercise references are the course's own functions, written out."""

from __future__ import annotations

import pytest
import torch

from course_utils.anomaly import (
    compressed_bits_per_dim,
    fit_pixel_model,
    pixel_bits_per_dim,
    roc_auc,
    typicality,
)
from course_utils.exercises import lesson10


def test_auc_by_pairs_is_the_rank_auc(rng: torch.Generator) -> None:
    normal = torch.randint(0, 6, (30,), generator=rng).double()  # many ties
    odd = torch.randint(2, 9, (20,), generator=rng).double()
    labels = [0] * len(normal) + [1] * len(odd)
    assert lesson10.auc_reference(normal, odd) == pytest.approx(
        roc_auc(labels, torch.cat([normal, odd])), abs=1e-12
    )


def test_zlib_reference_is_the_course_compressor(rng: torch.Generator) -> None:
    images = torch.randint(0, 256, (3, 1, 28, 28), generator=rng, dtype=torch.uint8)
    images[0] = 0
    torch.testing.assert_close(
        lesson10.zlib_bits_per_dim_reference(images).float(), compressed_bits_per_dim(images)
    )


def test_typicality_reference_is_the_course_typicality(rng: torch.Generator) -> None:
    bpd = torch.randn(57, generator=rng) + 3
    # one image per group: the same scores (the course's typicality keeps their order)
    torch.testing.assert_close(
        lesson10.typicality_reference(bpd, 3.1, 1).sort().values,
        typicality(bpd, 3.1, 1).sort().values,
    )
    for m in (4, 10):
        torch.testing.assert_close(
            lesson10.typicality_reference(bpd, 3.1, m, torch.Generator().manual_seed(5)),
            typicality(bpd, 3.1, m, torch.Generator().manual_seed(5)),
        )


@pytest.mark.parametrize("alpha", [1.0, 0.25])
def test_pixel_reference_is_the_course_pixel_model(rng: torch.Generator, alpha: float) -> None:
    train = torch.randint(0, 256, (30, 1, 6, 6), generator=rng, dtype=torch.uint8)
    train[:, :, :2] = 0  # a black band, as in the clothes
    images = torch.randint(0, 256, (4, 1, 6, 6), generator=rng, dtype=torch.uint8)
    torch.testing.assert_close(
        lesson10.pixel_bits_per_dim_reference(train, images, alpha).float(),
        pixel_bits_per_dim(fit_pixel_model(train, alpha), images),
    )


def test_pixel_reference_by_hand() -> None:
    # two training images of 1 pixel: values 0 and 0; alpha 1: P(0) = 3/258, P(5) = 1/258
    train = torch.zeros(2, 1, 1, 1, dtype=torch.uint8)
    images = torch.tensor([0, 5], dtype=torch.uint8).view(2, 1, 1, 1)
    want = torch.tensor(
        [-torch.log2(torch.tensor(3 / 258.0)), -torch.log2(torch.tensor(1 / 258.0))]
    )
    torch.testing.assert_close(
        lesson10.pixel_bits_per_dim_reference(train, images).float(), want, rtol=1e-6, atol=1e-6
    )
