"""Inpainting (lesson 08): masks, validation, the baselines, hole metrics.

The flow methods are tested in ``test_inpaint_flow.py``, the comparison and the
flow-assisted methods in ``test_inpaint_compare.py``, the panel in ``test_inpaint_panel.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_utils import inpaint as ip
from course_utils.core.metrics import MSE_FLOOR, masked_mse, masked_psnr
from course_utils.inpaint import masks

pytestmark = pytest.mark.usefixtures("rng")


# ----------------------------------------------------------------------- masks


@pytest.mark.parametrize("kind", ip.MASK_KINDS)
def test_masks_are_boolean_per_channel_and_partial(kind):
    m = ip.make_masks(kind, 5, (3, 28, 28), generator=torch.Generator().manual_seed(0))
    assert m.dtype == torch.bool and m.shape == (5, 3, 28, 28)
    assert torch.equal(m[:, 0], m[:, 2])  # a missing pixel is missing in every channel
    frac = m.float().flatten(1).mean(1)
    assert ((frac > 0) & (frac < 1)).all()


def test_mask_geometry():
    halves = {k: ip.make_masks(k, 1)[0, 0] for k in ("left", "right", "top", "bottom")}
    assert torch.equal(halves["left"] ^ halves["right"], torch.ones(28, 28, dtype=torch.bool))
    assert torch.equal(halves["top"], halves["left"].T)
    assert halves["left"][:, :14].all() and not halves["left"][:, 14:].any()
    centre = ip.make_masks("centre", 1, size=12)[0, 0]
    assert centre.sum() == 144 and centre[8:20, 8:20].all()
    noise = ip.make_masks("noise", 200, fraction=0.3, generator=torch.Generator().manual_seed(0))
    assert abs(noise.float().mean().item() - 0.3) < 0.01
    one = ip.make_masks("squares", 50, size=5, count=1, generator=torch.Generator().manual_seed(0))
    assert (one.flatten(1).sum(1) == 25).all()  # one 5×5 square each
    two = ip.make_masks("squares", 50, size=5, count=2, generator=torch.Generator().manual_seed(0))
    assert (two.flatten(1).sum(1) > 25).any()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"kind": "circle"}, "unknown mask kind"),
        ({"kind": "noise", "fraction": 1.0}, "fraction"),
        ({"kind": "centre", "size": 40}, "size"),
        ({"kind": "left", "n": 0}, "n must be"),
    ],
)
def test_bad_mask_requests(kwargs, match):
    args = {"n": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        ip.make_masks(**args)


# ------------------------------------------------------------------ validation


def _nan_in_image_1(x, m):
    x[1] = math.nan
    return x, m


# Each case spoils the inpainting problem's images or mask: (images, mask) -> (images, mask).
BAD_INPUTS = {
    "no channel axis": (lambda x, m: (x[:, 0], m), "images must have shape"),
    "mask of another size": (lambda x, m: (x, m[:, :, :20]), "mask must have the images' shape"),
    "mask for fewer images": (lambda x, m: (x, m[:3]), "mask must have the images' shape"),
    "mask of 0 and 2": (lambda x, m: (x, m.float() * 2), "only 0 and 1"),
    "mask of NaN": (lambda x, m: (x, torch.full(m.shape, math.nan)), "NaN"),
    "nothing masked": (lambda x, m: (x, torch.zeros_like(m)), "nothing is masked in image 0"),
    "everything masked": (lambda x, m: (x, torch.ones_like(m)), "everything is masked"),
    "NaN in the images": (_nan_in_image_1, "NaN"),
    "images above 1": (lambda x, m: (x * 3, m), r"\[0, 1\]"),
    "8-bit images": (lambda x, m: ((x * 255).to(torch.uint8), m), "to_unit"),
    "mask as a list": (lambda x, m: (x, [[True]]), "mask must be a tensor"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_inputs_raise_clear_errors(case, inpaint_problem, tiny_glow):
    spoil, match = BAD_INPUTS[case]
    images, mask = spoil(inpaint_problem.images, inpaint_problem.mask)
    with pytest.raises(ValueError, match=match):
        ip.check_inputs(images, mask)
    with pytest.raises(ValueError, match=match):  # every method validates the same way
        ip.pixel_inpaint(tiny_glow, images, mask, steps=1)


def test_zero_one_masks_and_one_channel_masks_are_accepted():
    x = torch.rand(2, 3, 28, 28)
    m = ip.make_masks("top", 2, (1, 28, 28))
    got = ip.check_inputs(x, m.int())
    assert got.dtype == torch.bool and got.shape == (2, 3, 28, 28)
    assert torch.equal(got[:, 1], m[:, 0])


# ------------------------------------------------------------------- baselines


def test_zero_and_mean_fill(inpaint_problem):
    x, m, train = inpaint_problem.images, inpaint_problem.mask, inpaint_problem.pool
    z = ip.zero_fill(x, m)
    assert (z[m] == 0).all() and torch.equal(z[~m], x[~m])
    f = ip.mean_fill(x, m, train)
    mean = train.mean(0).expand_as(x)
    assert torch.allclose(f[m], mean[m]) and torch.equal(f[~m], x[~m])


def test_nearest_neighbour_matches_brute_force_on_known_pixels_only():
    train = torch.rand(300, 1, 28, 28)
    x = torch.rand(6, 1, 28, 28)
    m = ip.make_masks("noise", 6, fraction=0.5, generator=torch.Generator().manual_seed(3))
    got = ip.nearest_neighbour_fill(x, m, train, chunk=64)  # several chunks
    for i in range(6):
        k = ~m[i]
        d = torch.stack([((x[i] - t)[k] ** 2).sum() for t in train])
        j = int(d.argmin())
        assert torch.allclose(got[i][m[i]], train[j][m[i]])
    # A query that agrees with one training image on its known pixels gets that image's hole.
    x2 = train[[5]].clone()
    m2 = ip.make_masks("left", 1)
    x2[m2] = 0.0
    assert torch.allclose(ip.nearest_neighbour_fill(x2, m2, train)[m2], train[5][m2[0]])


def test_baselines_check_the_training_pool(inpaint_problem):
    x, m = inpaint_problem.images, inpaint_problem.mask
    with pytest.raises(ValueError, match="train_images must have shape"):
        ip.mean_fill(x, m, torch.rand(5, 1, 14, 14))
    with pytest.raises(ValueError, match="to_unit"):
        ip.nearest_neighbour_fill(x, m, torch.zeros(5, 1, 28, 28, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("pool", "match"),
    [
        (torch.rand(5, 1, 28, 28) * 255, r"train_images must lie in \[0, 1\], got values in"),
        (torch.rand(5, 1, 28, 28) - 0.5, r"train_images must lie in \[0, 1\]"),
        (torch.full((5, 1, 28, 28), math.nan), "train_images contains NaN or inf"),
    ],
)
def test_baselines_refuse_a_training_pool_outside_the_unit_interval(pool, match, inpaint_problem):
    for fill in (ip.mean_fill, ip.kernel_fill, ip.nearest_neighbour_fill):
        with pytest.raises(ValueError, match=match):
            fill(inpaint_problem.images, inpaint_problem.mask, pool)


def test_neighbour_counts_and_chunks_of_the_wrong_type(inpaint_problem):
    x, m, pool = inpaint_problem.images, inpaint_problem.mask, inpaint_problem.pool
    for k in (2.5, True, "3", 0):
        with pytest.raises(ValueError, match="k must be an integer >= 1"):
            ip.kernel_fill(x, m, pool, k=k)
    ok = ip.kernel_fill(x, m, pool, k=np.int64(3))  # numpy integers are integers
    assert torch.equal(ok, ip.kernel_fill(x, m, pool, k=3))
    for chunk in (0, -1, 2.5):
        with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
            ip.nearest_neighbour_fill(x, m, pool, chunk=chunk)


def test_kernel_fill_weights_the_nearest_neighbours_by_distance():
    train = torch.rand(40, 1, 28, 28)
    x = torch.rand(3, 1, 28, 28)
    m = ip.make_masks("noise", 3, fraction=0.5, generator=torch.Generator().manual_seed(4))
    got = ip.kernel_fill(x, m, train, k=5, bandwidth=0.7)
    assert torch.equal(got[~m], x[~m])
    for i in range(3):
        k = ~m[i]
        d = torch.stack([((x[i] - t)[k] ** 2).sum() for t in train])
        near = d.argsort()[:5]
        w = torch.softmax(-d[near] / (0.7 * d[near[0]]), 0)
        want = (w[:, None] * train[near][:, m[i]]).sum(0)
        assert torch.allclose(got[i][m[i]], want, atol=1e-5)
    # One neighbour is the nearest-neighbour fill; a very wide kernel is the plain mean.
    assert torch.allclose(ip.kernel_fill(x, m, train, k=1), ip.nearest_neighbour_fill(x, m, train))
    wide = ip.kernel_fill(x, m, train, k=4, bandwidth=1e9)
    d = masks._known_distances(x, m, train)
    mean = train[d.topk(4, largest=False).indices].mean(1)
    assert torch.allclose(wide[m], mean[m], atol=1e-5)
    with pytest.raises(ValueError, match="k must be"):
        ip.kernel_fill(x, m, train, k=0)
    with pytest.raises(ValueError, match="bandwidth"):
        ip.kernel_fill(x, m, train, bandwidth=0.0)


# --------------------------------------------------------------------- metrics


def test_masked_mse_and_psnr_by_hand():
    target = torch.zeros(2, 1, 2, 2)
    pred = torch.tensor([[[[0.5, 1.0], [0.0, 0.0]]], [[[0.1, 0.1], [0.1, 0.1]]]])
    mask = torch.tensor([[[[True, False], [True, False]]]]).expand(2, -1, -1, -1)
    mse = masked_mse(pred, target, mask)
    assert torch.allclose(mse, torch.tensor([0.125, 0.01]))  # the 1.0 is outside the hole
    assert torch.allclose(masked_psnr(pred, target, mask), -10 * torch.log10(mse))
    perfect = masked_psnr(target, target, mask)
    assert torch.allclose(perfect, torch.tensor(-10 * math.log10(MSE_FLOOR)))
    with pytest.raises(ValueError, match="same shape"):
        masked_mse(pred[:1], target, mask)
    with pytest.raises(ValueError, match="empty"):
        masked_mse(pred, target, torch.zeros_like(mask))


def test_counts_of_masks_must_be_whole_numbers() -> None:
    for bad in (2.5, "3", True, 0):
        with pytest.raises(ValueError, match="n must be an integer >= 1"):
            ip.make_masks("noise", bad)
    with pytest.raises(ValueError, match="count must be an integer"):
        ip.make_masks("squares", 2, count=1.5)


def test_the_gaussian_conditional_is_the_regression_of_the_hole_on_the_known_pixels():
    # Two pixels, x2 = 0.5 + 0.8·(x1 − 0.5) + noise: E[x2 | x1] by hand from the covariance.
    gen = torch.Generator().manual_seed(0)
    x1 = 0.5 + 0.1 * torch.randn(20000, generator=gen)
    x2 = 0.5 + 0.8 * (x1 - 0.5) + 0.03 * torch.randn(20000, generator=gen)
    train = torch.stack([x1, x2], 1).clamp(0, 1).view(-1, 1, 1, 2)
    fit = ip.gaussian_fit(train, shrinkage=0.0)
    torch.testing.assert_close(fit.cov, torch.cov(train.flatten(1).double().T))
    query = torch.tensor([0.7, 0.0]).view(1, 1, 1, 2)
    hole = torch.tensor([False, True]).view(1, 1, 1, 2)
    got = ip.gaussian_fill(query, hole, fit=fit)
    mu, c = fit.mean, fit.cov
    want = mu[1] + c[1, 0] / c[0, 0] * (0.7 - mu[0])
    assert got[0, 0, 0, 0] == query[0, 0, 0, 0]  # the known pixel, bit for bit
    assert abs(float(got[0, 0, 0, 1]) - float(want)) < 1e-5
    assert abs(float(got[0, 0, 0, 1]) - 0.66) < 0.01  # 0.5 + 0.8 · 0.2
    shrunk = ip.gaussian_fit(train, shrinkage=1.0).cov  # all the way: a multiple of I
    assert torch.allclose(shrunk, shrunk.diagonal().mean() * torch.eye(2, dtype=shrunk.dtype))
    with pytest.raises(ValueError, match="shrinkage"):
        ip.gaussian_fit(train, shrinkage=1.5)
    with pytest.raises(ValueError, match="train_images or a fit"):
        ip.gaussian_fill(query, hole)


def test_an_ambiguous_mask_hides_where_two_classes_differ_most():
    train = torch.full((6, 1, 4, 4), 0.5)
    labels = torch.tensor([4, 4, 4, 9, 9, 1])
    train[:3, 0, 0, 0] = 1.0  # the 4s differ from the 9s most at (0, 0), then at (3, 3)
    train[:3, 0, 3, 3] = 0.8
    train[5, 0, 2, 2] = 0.0  # the 1 does not matter
    mask = ip.ambiguous_mask(train, labels, (4, 9), pixels=2)
    assert mask.shape == (1, 1, 4, 4) and mask.sum() == 2
    assert mask[0, 0, 0, 0] and mask[0, 0, 3, 3]
    with pytest.raises(ValueError, match="no training image has the label 7"):
        ip.ambiguous_mask(train, labels, (4, 7), pixels=2)
    with pytest.raises(ValueError, match="two different labels"):
        ip.ambiguous_mask(train, labels, (4, 4), pixels=2)
