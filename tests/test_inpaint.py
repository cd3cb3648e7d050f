"""Inpainting (lesson 08): masks, validation, baselines, the flow methods, hole metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_utils import inpaint as ip
from course_utils.metrics import MSE_FLOOR, masked_mse, masked_psnr
from course_utils.models import Glow

pytestmark = pytest.mark.usefixtures("rng")


@pytest.fixture(scope="module")
def model() -> Glow:
    torch.manual_seed(0)
    m = Glow(levels=2, blocks=1, hidden=8, logit_alpha=0.05)
    with torch.no_grad():  # ActNorm initialises itself on its first batch
        m.log_prob(torch.rand(16, 1, 28, 28))
    return m.eval()


def digits(n: int = 4) -> torch.Tensor:
    """Digit-like images: a bright bar on black, in [0, 1]."""
    x = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        x[i, 0, 6:22, 10 + i : 14 + i] = 0.9
    return x + 0.01


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

GOOD_MASK = ip.make_masks("centre", 4, size=8)


@pytest.mark.parametrize(
    "images, mask, match",
    [
        (digits()[:, 0], GOOD_MASK, "images must have shape"),
        (digits(), GOOD_MASK[:, :, :20], "mask must have the images' shape"),
        (digits(), GOOD_MASK[:3], "mask must have the images' shape"),
        (digits(), GOOD_MASK.float() * 2, "only 0 and 1"),
        (digits(), torch.full((4, 1, 28, 28), float("nan")), "NaN"),
        (digits(), torch.zeros(4, 1, 28, 28, dtype=torch.bool), "nothing is masked in image 0"),
        (digits(), torch.ones(4, 1, 28, 28, dtype=torch.bool), "everything is masked"),
        (digits().index_put_((torch.tensor([1]),), torch.tensor(math.nan)), GOOD_MASK, "NaN"),
        (digits() * 3, GOOD_MASK, r"\[0, 1\]"),
        ((digits() * 255).to(torch.uint8), GOOD_MASK, "to_unit"),
        (digits(), [[True]], "mask must be a tensor"),
    ],
)
def test_bad_inputs_raise_clear_errors(images, mask, match, model):
    with pytest.raises(ValueError, match=match):
        ip.check_inputs(images, mask)
    with pytest.raises(ValueError, match=match):  # every method validates the same way
        ip.pixel_inpaint(model, images, mask, steps=1)


def test_zero_one_masks_and_one_channel_masks_are_accepted():
    x = torch.rand(2, 3, 28, 28)
    m = ip.make_masks("top", 2, (1, 28, 28))
    got = ip.check_inputs(x, m.int())
    assert got.dtype == torch.bool and got.shape == (2, 3, 28, 28)
    assert torch.equal(got[:, 1], m[:, 0])


# ------------------------------------------------------------------- baselines


def test_zero_and_mean_fill():
    x, m = digits(), GOOD_MASK
    train = torch.rand(10, 1, 28, 28)
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


def test_baselines_check_the_training_pool():
    with pytest.raises(ValueError, match="train_images must have shape"):
        ip.mean_fill(digits(), GOOD_MASK, torch.rand(5, 1, 14, 14))
    with pytest.raises(ValueError, match="to_unit"):
        ip.nearest_neighbour_fill(digits(), GOOD_MASK, torch.zeros(5, 1, 28, 28, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("pool", "match"),
    [
        (torch.rand(5, 1, 28, 28) * 255, r"train_images must lie in \[0, 1\], got values in"),
        (torch.rand(5, 1, 28, 28) - 0.5, r"train_images must lie in \[0, 1\]"),
        (torch.full((5, 1, 28, 28), math.nan), "train_images contain NaN or inf"),
    ],
)
def test_baselines_refuse_a_training_pool_outside_the_unit_interval(pool, match):
    for fill in (ip.mean_fill, ip.kernel_fill, ip.nearest_neighbour_fill):
        with pytest.raises(ValueError, match=match):
            fill(digits(), GOOD_MASK, pool)


def test_neighbour_counts_and_chunks_of_the_wrong_type():
    pool = torch.rand(8, 1, 28, 28)
    for k in (2.5, True, "3", 0):
        with pytest.raises(ValueError, match="k must be an integer >= 1"):
            ip.kernel_fill(digits(), GOOD_MASK, pool, k=k)
    ok = ip.kernel_fill(digits(), GOOD_MASK, pool, k=np.int64(3))  # numpy integers are integers
    assert torch.equal(ok, ip.kernel_fill(digits(), GOOD_MASK, pool, k=3))
    for chunk in (0, -1, 2.5):
        with pytest.raises(ValueError, match="chunk must be an integer >= 1"):
            ip.nearest_neighbour_fill(digits(), GOOD_MASK, pool, chunk=chunk)


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
    d = ip._known_distances(x, m, train)
    mean = train[d.topk(4, largest=False).indices].mean(1)
    assert torch.allclose(wide[m], mean[m], atol=1e-5)
    with pytest.raises(ValueError, match="k must be"):
        ip.kernel_fill(x, m, train, k=0)
    with pytest.raises(ValueError, match="bandwidth"):
        ip.kernel_fill(x, m, train, bandwidth=0.0)


# ---------------------------------------------------------------- flow methods


def test_pixel_ascent_changes_only_the_hole_and_raises_the_likelihood(model):
    x, m = digits(), ip.make_masks("centre", 4, size=10)
    res = ip.pixel_inpaint(model, x, m, steps=15, lr=0.1, init="zero")
    assert torch.equal(res.images[~m], x[~m])  # known pixels bit for bit
    assert not torch.equal(res.images[m], ip.zero_fill(x, m)[m])  # the hole moved
    assert res.images.min() >= 0 and res.images.max() <= 1
    assert res.log_prob.shape == (16, 4)
    with torch.no_grad():
        zero_filled = model.log_prob(ip.zero_fill(x, m))
        final = model.log_prob(res.images)
    # The trace starts at the zero-filled input and is the model's own log p.
    assert torch.allclose(res.log_prob[0], zero_filled, rtol=1e-5, atol=1e-3)
    assert torch.allclose(res.log_prob[-1], final, rtol=1e-5, atol=1e-3)
    assert (final > zero_filled).all()


def test_the_model_is_left_as_it_was(model):
    flags = [p.requires_grad for p in model.parameters()]
    model.train()
    ip.pixel_inpaint(model, digits(), GOOD_MASK, steps=2)
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    model.eval()


def test_pixel_ascent_from_a_given_fill(model):
    x, m = digits(), GOOD_MASK
    init = ip.mean_fill(x, m, torch.rand(8, 1, 28, 28))
    res = ip.pixel_inpaint(model, x, m, steps=0, init=init)
    assert torch.allclose(res.images, init, atol=1e-5)  # zero steps: the start itself
    with pytest.raises(ValueError, match="init must have the images' shape"):
        ip.pixel_inpaint(model, x, m, steps=1, init=init[:2])
    with pytest.raises(ValueError, match="steps"):
        ip.pixel_inpaint(model, x, m, steps=-1)


def test_stochastic_completions_differ_and_keep_the_known_pixels(model):
    x, m = digits(1), ip.make_masks("right", 1)
    res = ip.stochastic_inpaint(model, x[0], m[0], n=4, steps=10, generator=torch.Generator())
    assert res.images.shape == (4, 1, 28, 28)
    known = ~m.expand(4, -1, -1, -1)
    assert torch.equal(res.images[known], x.expand(4, -1, -1, -1)[known])
    spread = res.images[:, m[0]].std(0).mean()
    assert spread > 0.01  # several different fills, not one
    with pytest.raises(ValueError, match="one image"):
        ip.stochastic_inpaint(model, x.expand(2, -1, -1, -1), m.expand(2, -1, -1, -1))


def test_stochastic_starts_come_from_the_nearest_training_images(model):
    x, m = digits(1), ip.make_masks("right", 1)
    pool = torch.rand(60, 1, 28, 28) * 0.5
    pool[:16] = x + 0.02 * torch.rand(16, 1, 28, 28)  # 16 close cousins of the image
    pool[:16, :, :, 14:] = torch.rand(16, 1, 28, 14)  # with different right halves
    res = ip.stochastic_inpaint(model, x, m, n=4, train_images=pool.clamp(0, 1), steps=2)
    starts = res.extra["starts"]
    hole = m.expand(4, -1, -1, -1)
    cousins = pool[:16].clamp(0, 1)[:, m[0]]
    for s in starts[hole].view(4, -1):  # each start is one of the 4n = 16 nearest: a cousin here
        assert torch.isclose(cousins, s).all(1).any()
    assert len({tuple(s.tolist()) for s in starts[hole].view(4, -1)}) == 4
    with pytest.raises(ValueError, match="fewer than n"):
        ip.stochastic_inpaint(model, x, m, n=4, train_images=pool[:3])


def test_latent_optimisation_keeps_the_known_pixels_and_stays_finite(model):
    x, m = digits(), ip.make_masks("bottom", 4)
    res = ip.latent_inpaint(model, x, m, steps=5, trace_every=1)
    assert torch.equal(res.images[~m], x[~m])
    assert torch.isfinite(res.images).all() and torch.isfinite(res.log_prob).all()
    assert res.log_prob.shape == (6, 4)
    with torch.no_grad():
        assert torch.allclose(res.log_prob[-1], model.log_prob(res.images), rtol=1e-5, atol=1e-3)
    assert ip.latent_inpaint(model, x, m, steps=2).log_prob.shape == (1, 4)
    with pytest.raises(ValueError, match="sigma"):
        ip.latent_inpaint(model, x, m, sigma=0.0)


def test_flow_kernel_weighs_each_neighbour_by_the_flows_likelihood_ratio(model):
    x, m = digits(), ip.make_masks("right", 4)
    train = (digits(1) + 0.1 * torch.rand(30, 1, 28, 28)).clamp(0, 1)  # cousins of the digits
    train[..., 14:] = torch.rand(30, 1, 28, 14)  # with different right halves
    res = ip.flow_kernel_inpaint(model, x, m, train, k=6, bandwidth=1.5, temperature=0.5)
    assert torch.equal(res.images[~m], x[~m])  # known pixels bit for bit
    idx, w = res.extra["index"], res.extra["weights"]
    assert idx.shape == w.shape == (4, 6) and torch.allclose(w.sum(1), torch.ones(4))
    d = ip._known_distances(x, m, train)
    assert torch.equal(idx, d.topk(6, largest=False).indices)
    assert torch.allclose(res.extra["distance"], d.gather(1, idx).clamp_min(0))
    with torch.no_grad():  # the score by hand: log p with our known pixels − log p of the neighbour
        for i in range(4):
            cand = torch.where(m[i], train[idx[i]], x[i])
            assert torch.allclose(
                res.extra["log_p_candidates"][i], model.log_prob(cand), rtol=1e-4, atol=1e-2
            )
            score = model.log_prob(cand) - model.log_prob(train[idx[i]])
            assert torch.allclose(res.extra["score"][i], score, rtol=1e-4, atol=1e-2)
            dist = d[i, idx[i]]
            logits = -dist / (1.5 * dist[0]) + score / (0.5 * m[i].sum())
            assert torch.allclose(w[i], torch.softmax(logits, 0), atol=1e-4)
            want = (w[i][:, None, None, None] * cand).sum(0)
            assert torch.allclose(res.images[i][m[i]], want[m[i]], atol=1e-5)
        assert torch.allclose(res.log_prob[0], model.log_prob(res.images), rtol=1e-5, atol=1e-3)
    # The flow's vote moves the weights; at a huge temperature it is the kernel alone.
    assert (w - res.extra["kernel_weights"]).abs().max() > 1e-3
    hot = ip.flow_kernel_inpaint(model, x, m, train, k=6, bandwidth=1.5, temperature=1e12)
    assert torch.allclose(hot.images, ip.kernel_fill(x, m, train, k=6, bandwidth=1.5), atol=1e-5)
    with pytest.raises(ValueError, match="temperature"):
        ip.flow_kernel_inpaint(model, x, m, train, temperature=0.0)
    with pytest.raises(ValueError, match="needs the mask"):
        ip.neighbour_weights(res.extra["distance"], score=res.extra["score"])
    with pytest.raises(ValueError, match=r"\(batch, k\)"):
        ip.blend_neighbours(x, m, train, idx, w[:, :3])
    with pytest.raises(ValueError, match="nothing is masked"):
        ip.flow_kernel_inpaint(model, x, torch.zeros_like(m), train)


class _Blind(torch.nn.Module):
    """A flow that cannot score images whose top-right pixel is bright (log p = NaN there)."""

    def __init__(self, flow):
        super().__init__()
        self.flow = flow

    def log_prob(self, x):
        lp = self.flow.log_prob(x)
        return torch.where(x[:, 0, 0, -1] > 0.95, torch.full_like(lp, math.nan), lp)


def test_flow_kernel_ignores_neighbours_the_flow_cannot_score(model):
    x, m = digits(2), ip.make_masks("right", 2)
    train = torch.rand(20, 1, 28, 28) * 0.5
    train[3, 0, 0, -1] = 1.0  # the flow gives NaN for any completion that copies this hole
    res = ip.flow_kernel_inpaint(_Blind(model), x, m, train, k=20)
    assert torch.isfinite(res.images).all()
    picked = res.extra["index"] == 3
    assert picked.sum() == 2 and (res.extra["weights"][picked] == 0).all()
    # If no neighbour can be scored, the kernel alone decides.
    train[:, 0, 0, -1] = 1.0
    res = ip.flow_kernel_inpaint(_Blind(model), x, m, train, k=5)
    assert torch.allclose(res.images, ip.kernel_fill(x, m, train, k=5), atol=1e-6)


def test_compare_runs_every_method_and_tabulates_them(model):
    x = digits(4)
    masks = {"centre": ip.make_masks("centre", 4, size=8), "top": ip.make_masks("top", 4)}
    rows = ip.compare(model, x, masks, torch.rand(20, 1, 28, 28), steps=2, batch_size=2)
    assert {(r["mask"], r["method"]) for r in rows} == {(k, m) for k in masks for m in ip.METHODS}
    for r in rows:
        assert r["flow"] == ip.METHODS[r["method"]] and len(r["psnr_per_image"]) == 4
        assert math.isfinite(r["psnr"]) and r["seconds_per_batch"] >= 0
    table = ip.psnr_table(rows).splitlines()
    assert table[0].split()[1 : 1 + len(ip.METHODS)] == list(ip.METHODS) and len(table) == 3
    with pytest.raises(ValueError, match="unknown method"):
        ip.fill("magic", model, x, masks["top"], x)
    with pytest.raises(ValueError, match="needs a model"):
        ip.fill("kernel+flow", None, x, masks["top"], x)


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


# ----------------------------------------------------------------------- panel


def test_inpaint_panel_redraws_on_the_button_only(model):
    from course_utils.widgets import inpaint_figure, inpaint_panel

    images, train = digits(4), torch.rand(20, 1, 28, 28)
    fig = inpaint_figure(model, images, train, index=1, kind="noise", size=14, steps=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "masked" and titles[5] == "original"
    assert all("dB" in t for t in titles[1:5])
    p = inpaint_panel(model, images, train)
    assert p.runs == 1 and p.button is not None
    first = p.last_figure
    p.controls["kind"].value = "top"
    p.controls["steps"].value = 0
    assert p.runs == 1  # moving a control does not recompute
    p.button.click()
    assert p.runs == 2 and p.last_figure is not first
    assert p.last_figure.axes[6].lines[0].get_xdata().tolist() == [0]  # 0 steps: one point


def test_counts_of_masks_must_be_whole_numbers() -> None:
    for bad in (2.5, "3", True, 0):
        with pytest.raises(ValueError, match="n must be an integer >= 1"):
            ip.make_masks("noise", bad)
    with pytest.raises(ValueError, match="count must be an integer"):
        ip.make_masks("squares", 2, count=1.5)


def test_stochastic_inpaint_needs_a_whole_number_of_completions(model) -> None:
    x = digits(1)
    m = ip.make_masks("centre", 1)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        ip.stochastic_inpaint(model, x[0], m[0], n=2.5)
