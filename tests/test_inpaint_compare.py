"""Lesson 08's comparison: the flow judging neighbours, every method on every mask, the table."""

from __future__ import annotations

import math

import pytest
import torch

from course_utils import inpaint as ip
from course_utils.core.metrics import MSE_FLOOR, masked_psnr
from course_utils.inpaint import comparison as cmp
from course_utils.inpaint import masks

pytestmark = pytest.mark.usefixtures("rng")


@pytest.fixture
def model(tiny_glow):
    return tiny_glow


def test_flow_kernel_weighs_each_neighbour_by_the_flows_likelihood_ratio(model, inpaint_problem):
    x, m = inpaint_problem.images, ip.make_masks("right", 4)
    train = (x[:1] + 0.1 * torch.rand(30, 1, 28, 28)).clamp(0, 1)  # cousins of the digits
    train[..., 14:] = torch.rand(30, 1, 28, 14)  # with different right halves
    res = ip.flow_kernel_inpaint(model, x, m, train, k=6, bandwidth=1.5, temperature=0.5)
    assert torch.equal(res.images[~m], x[~m])  # known pixels bit for bit
    idx, w = res.extra["index"], res.extra["weights"]
    assert idx.shape == w.shape == (4, 6) and torch.allclose(w.sum(1), torch.ones(4))
    d = masks._known_distances(x, m, train)
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


def test_flow_kernel_ignores_neighbours_the_flow_cannot_score(model, inpaint_problem):
    x, m = inpaint_problem.images[:2], ip.make_masks("right", 2)
    train = torch.rand(20, 1, 28, 28) * 0.5
    train[3, 0, 0, -1] = 1.0  # the flow gives NaN for any completion that copies this hole
    res = ip.flow_kernel_inpaint(_Blind(model), x, m, train, k=20)
    assert torch.isfinite(res.images).all()
    picked = res.extra["index"] == 3
    assert picked.sum() == 2 and (res.extra["weights"][picked] == 0).all()
    # If no neighbour can be scored, the kernel alone decides.
    train[:, 0, 0, -1] = 1.0
    res = ip.flow_kernel_inpaint(_Blind(model), x, m, train, k=5)
    same_width = ip.kernel_fill(x, m, train, k=5, bandwidth=ip.FLOW_BANDWIDTH)
    assert torch.allclose(res.images, same_width, atol=1e-6)


FAST = {
    "ascent": {"steps": 2},
    "nn+ascent": {"steps": 2},
    "latent": {"steps": 2},
    "posterior": {"chains": 2, "steps": 2, "warmup": 1, "latent_steps": 1},
}


def test_compare_runs_every_method_in_its_group_and_tabulates_them(model, inpaint_problem):
    x, pool = inpaint_problem.images, inpaint_problem.pool
    masks = {"centre": inpaint_problem.mask, "top": ip.make_masks("top", 4)}
    rows = cmp.compare(model, x, masks, pool, batch_size=2, settings=FAST)
    assert {(r["mask"], r["method"]) for r in rows} == {(k, m) for k in masks for m in cmp.METHODS}
    for r in rows:
        assert r["group"] == cmp.METHODS[r["method"]] and len(r["psnr_per_image"]) == 4
        assert math.isfinite(r["psnr"]) and r["seconds_per_batch"] >= 0
    assert set(cmp.METHODS.values()) == {"baseline", "flow", "assisted"}
    table = cmp.psnr_table(rows).splitlines()
    assert len(table) == 2 + len(masks)
    assert "baselines" in table[0] and "flow only" in table[0] and "flow-assisted" in table[0]
    assert table[1].split()[1:5] == ["zero", "mean", "nn", "kernel"]  # baselines first
    assert "best flow only − best baseline" in table[1]
    # A run still going (the second mask type has only its first methods) tabulates too.
    partial = [r for r in rows if r["mask"] == "centre" or r["method"] in ("zero", "mean")]
    last = cmp.psnr_table(partial).splitlines()[-1].split()
    assert last[0] == "top" and last[3:9] == ["–"] * 6


def test_paired_gains_and_the_best_of_each_group_by_hand():
    a = {"mask": "m", "method": "latent", "group": "flow", "psnr": 12.0,
         "psnr_per_image": [11.0, 13.0, 12.0]}  # fmt: skip
    b = {"mask": "m", "method": "kernel", "group": "baseline", "psnr": 11.0,
         "psnr_per_image": [10.0, 11.5, 11.5]}  # fmt: skip
    gain, sem = cmp.paired_gain(a, b)
    diffs = torch.tensor([1.0, 1.5, 0.5])
    assert gain == pytest.approx(1.0) and sem == pytest.approx(float(diffs.std() / 3**0.5))
    assert cmp.best([a, b], "m", "flow") is a and cmp.best([a, b], "m", "assisted") is None
    with pytest.raises(ValueError, match="two images"):
        cmp.paired_gain({**a, "psnr_per_image": [1.0]}, {**b, "psnr_per_image": [0.0]})


def test_rows_from_fills_made_elsewhere_score_the_hole_only(inpaint_problem):
    x = inpaint_problem.images[:3]
    mask = ip.make_masks("left", 3)
    wrong_outside = torch.where(mask, x, torch.rand_like(x))  # perfect hole, garbage elsewhere
    rows = cmp.psnr_rows(x, {"left": mask}, {"left": {"zero": ip.zero_fill(x, mask),
                                                      "kernel": wrong_outside}})  # fmt: skip
    by = {r["method"]: r for r in rows}
    want = masked_psnr(ip.zero_fill(x, mask), x, mask)
    assert by["zero"]["psnr_per_image"] == pytest.approx(want.tolist())
    assert by["kernel"]["psnr"] == pytest.approx(-10 * math.log10(MSE_FLOOR))
    with pytest.raises(ValueError, match="unknown method"):
        cmp.psnr_rows(x, {"left": mask}, {"left": {"magic": x}})


def test_fill_asks_for_what_a_method_needs(model, inpaint_problem):
    x, m = inpaint_problem.images[:2], ip.make_masks("top", 2)
    with pytest.raises(ValueError, match="unknown method"):
        cmp.fill("magic", model, x, m, x)
    with pytest.raises(ValueError, match="needs a model"):
        cmp.fill("kernel+flow", None, x, m, x)
    with pytest.raises(ValueError, match="needs train_images"):
        cmp.fill("nn", model, x, m, None)
    out = cmp.fill("ascent", model, x, m, None, {"steps": 1})  # flow only: no pool needed
    assert torch.equal(out[~m], x[~m])
    with pytest.raises(ValueError, match="unknown methods"):
        cmp.compare(model, x, {"top": m}, x, methods=("magic",))


class _ReadsTheCorner(torch.nn.Module):
    """A stand-in classifier: the digit it reads is 10 × the top-left pixel, rounded down."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        label = (x[:, 0, 0, 0] * 10).long().clamp(0, 9)
        return 20.0 * torch.nn.functional.one_hot(label, 10).float()


def _with_corners(values: list[float]) -> torch.Tensor:
    x = torch.zeros(len(values), 1, 28, 28)
    x[:, 0, 0, 0] = torch.tensor(values)
    return x


def test_label_consistency_and_class_shares_count_what_the_classifier_reads() -> None:
    clf = _ReadsTheCorner()
    x = _with_corners([0.45, 0.95, 0.95, 0.35, 0.05])  # read as 4, 9, 9, 3, 0
    same = cmp.label_consistency(clf, x, torch.tensor([4, 9, 4, 3, 1]))
    assert same.tolist() == [True, True, False, True, False]
    shares = cmp.class_shares(clf, x, (4, 9))
    assert shares == {4: pytest.approx(0.2), 9: pytest.approx(0.4), "other": pytest.approx(0.4)}
    with pytest.raises(ValueError, match="labels must have shape"):
        cmp.label_consistency(clf, x, torch.tensor([4, 9]))


def test_rows_carry_label_consistency_and_the_table_compares_flow_with_kernel() -> None:
    clf = _ReadsTheCorner()
    truth = torch.tensor([4, 9, 3, 3])
    x = _with_corners([0.45, 0.95, 0.35, 0.35])
    mask = torch.zeros(4, 1, 28, 28, dtype=torch.bool)
    mask[..., 0, :5] = True  # the corner is in the hole
    fills = {"kernel": _with_corners([0.45, 0.45, 0.35, 0.35]), "latent": x.clone()}
    rows = cmp.psnr_rows(x, {"top": mask}, {"top": fills}, clf, truth)
    got = {r["method"]: r["label_consistency"] for r in rows}
    assert got == {"kernel": 0.75, "latent": 1.0}
    line = cmp.label_table(rows).splitlines()[1]
    assert line.split()[1:3] == ["75", "100"] and "latent" in line and "+25.0" in line
    with pytest.raises(ValueError, match="both classifier and labels"):
        cmp.psnr_rows(x, {"top": mask}, {"top": fills}, clf)


def test_fill_many_shares_one_multistart_run_whose_first_fit_is_latent_map(model, inpaint_problem):
    x, m = inpaint_problem.images[:2], inpaint_problem.mask[:2]
    settings = {"multistart": {"starts": 2, "steps": 2}}
    extras = {}
    got = cmp.fill_many(
        ("latent", "multistart", "multistart-best", "zero"), model, x, m, inpaint_problem.pool,
        settings,
        torch.Generator().manual_seed(0), extras,
    )  # fmt: skip
    alone = ip.latent_inpaint(model, x, m, steps=2, lr=cmp.SETTINGS["multistart"]["lr"]).images
    torch.testing.assert_close(got["latent"][0], alone, atol=1e-5, rtol=0)
    fits = extras["multistart"]["fits"]
    torch.testing.assert_close(got["multistart"][0], fits.mean(1))
    best = extras["multistart"]["objective"].argmin(1)
    assert torch.equal(got["multistart-best"][0], fits[torch.arange(2), best])
    assert torch.equal(got["zero"][0], ip.zero_fill(x, m))
