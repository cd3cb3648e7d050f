"""Lesson 11's exercises: a coupling's inverse given a context, "drawn as asked", Bayes'
rule in log space, and the hybrid loss.

The oracles: for the coupling, the layer's own ``inverse`` (and the round trip
through its ``forward``) on random layers with non-zero weights and random
contexts; for Bayes' rule, a float64 ``log_softmax`` of the joint; for drawn
as asked, the count written out sample by sample; for the hybrid loss, the
course's :func:`course_utils.glow.train.hybrid_loss`.
"""

from __future__ import annotations

import torch
from torch import nn

from course_utils.exercises import ExerciseFailed, exercise, expect, expect_close
from course_utils.flows2d.conditional import ConditionalAffineCoupling
from course_utils.glow.train import hybrid_loss

__all__ = [
    "conditional_inverse_reference",
    "class_posterior_reference",
    "drawn_as_asked_reference",
    "hybrid_loss_reference",
]

Tensor = torch.Tensor


def _pair(got: object, what: str) -> tuple[Tensor, Tensor]:
    if not isinstance(got, tuple | list) or len(got) != 2:
        raise ExerciseFailed(f"{what} should return a pair (values, log_det), got {got!r:.60}")
    return got[0], got[1]


# --------------------------------------------- 11.1 the inverse of a conditional coupling


def conditional_inverse_reference(
    layer: ConditionalAffineCoupling, x: Tensor, context: Tensor
) -> tuple[Tensor, Tensor]:
    """Data → latent through a coupling that sees a context: ``(z, log|det ∂z/∂x|)``."""
    kept = x * layer.mask
    s, t = layer.net(torch.cat([kept, context], dim=1)).chunk(2, dim=1)
    free = 1 - layer.mask
    s = layer.s_scale * torch.tanh(s) * free
    t = t * free
    return (x - t) * torch.exp(-s), -s.sum(1)


def _inverse_without_context(layer, x, context):
    """Gives the network zeros instead of the context: one map for every context."""
    return conditional_inverse_reference(layer, x, torch.zeros_like(context))


def _inverse_log_det_sign(layer, x, context):
    """Returns the forward map's log-det (+Σ s) with the inverse's values."""
    z, log_det = conditional_inverse_reference(layer, x, context)
    return z, -log_det


def _inverse_is_forward(layer, x, context):
    """Runs the forward map (x·exp(s) + t) instead of undoing it."""
    kept = x * layer.mask
    s, t = layer.net(torch.cat([kept, context], dim=1)).chunk(2, dim=1)
    free = 1 - layer.mask
    s = layer.s_scale * torch.tanh(s) * free
    return x * torch.exp(s) + t * free, s.sum(1)


def _random_coupling(mask: list[float], context_dim: int, seed: int) -> ConditionalAffineCoupling:
    """A conditional coupling whose last layer is not the identity start (zeros)."""
    g = torch.Generator().manual_seed(seed)
    layer = ConditionalAffineCoupling(mask, context_dim, hidden=16)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(0.7 * torch.randn(p.shape, generator=g))
    return layer


@exercise(
    "11.1",
    "the inverse of a coupling that sees a context",
    reference=conditional_inverse_reference,
    wrong=[_inverse_without_context, _inverse_log_det_sign, _inverse_is_forward],
    hint=(
        "The forward map is `x = z·exp(s) + t` on the free coordinates, with `s, t` computed "
        "from the kept coordinates and the context. The kept coordinates are the same in `x` and "
        "`z`, so the network sees the same input going back: "
        "`layer.net(torch.cat([x * layer.mask, context], dim=1)).chunk(2, dim=1)`, then "
        "`s = layer.s_scale * torch.tanh(s) * (1 - layer.mask)` and `t = t * (1 - layer.mask)`. "
        "Undo the forward map step by step; the inverse's log-det is minus the forward's."
    ),
    answer=(
        "`s, t = layer.net(cat([x * m, context], 1)).chunk(2, 1)`, "
        "`s = s_scale · tanh(s) · (1−m)`, `t = t · (1−m)`; then `z = (x − t) · exp(−s)` and "
        "`log_det = −s.sum(1)`. The context enters only the network, so for a fixed context "
        "it is an ordinary coupling; giving the network zeros instead learns one density for "
        "every context."
    ),
)
def _check_conditional_inverse(fn) -> None:
    g = torch.Generator().manual_seed(1)
    for k, (mask, context_dim) in enumerate((([1.0, 0.0], 1), ([0.0, 1.0], 3))):
        layer = _random_coupling(mask, context_dim, seed=10 + k)
        x = torch.randn(64, 2, generator=g)
        context = torch.randn(64, context_dim, generator=g) * 2
        with torch.no_grad():
            z, log_det = _pair(fn(layer, x.clone(), context.clone()), "your inverse")
            want_z, want_log_det = layer.inverse(x, context)
        what = f"mask {mask}, a context of {context_dim} number(s)"
        expect_close(z, want_z, f"z ({what})")
        expect_close(log_det, want_log_det, f"log_det ({what})")
        with torch.no_grad():
            back, _ = layer(torch.as_tensor(z).float(), context)
        expect_close(back, x, f"forward(your z) against x ({what})", atol=1e-4)


# ----------------------------------------------------------- 11.3 Bayes' rule in log space


def class_posterior_reference(log_px_given_y: Tensor, log_prior: Tensor) -> Tensor:
    """``log p(y | x)`` ``(N, K)`` from ``log p(x | y)`` ``(N, K)`` and ``log p(y)`` ``(K,)``."""
    joint = torch.as_tensor(log_px_given_y).double() + torch.as_tensor(log_prior).double()
    return torch.log_softmax(joint, dim=1)


def _posterior_naive_exp(log_px_given_y, log_prior):
    """Exponentiates first: exp(−600) underflows to 0 and 0/0 is NaN."""
    joint = (torch.as_tensor(log_px_given_y) + torch.as_tensor(log_prior)).float()
    p = joint.exp()
    return (p / p.sum(1, keepdim=True)).log()


def _posterior_without_prior(log_px_given_y, log_prior):
    """Leaves out log p(y): the likelihoods alone, normalised."""
    return torch.log_softmax(torch.as_tensor(log_px_given_y).double(), dim=1)


def _posterior_not_normalised(log_px_given_y, log_prior):
    """Returns the joint log p(x | y) + log p(y), which does not sum to one over y."""
    return torch.as_tensor(log_px_given_y).double() + torch.as_tensor(log_prior).double()


@exercise(
    "11.3",
    "Bayes' rule in log space",
    reference=class_posterior_reference,
    wrong=[_posterior_naive_exp, _posterior_without_prior, _posterior_not_normalised],
    hint=(
        "Bayes' rule: `p(y | x) = p(x | y) p(y) / Σ_k p(x | k) p(k)`. In logs the numerator is a "
        "sum, `log_px_given_y + log_prior` (broadcast over the rows). A whole image's "
        "log-likelihood is hundreds or thousands of nats away from zero (about -600 nats for an "
        "8-bit digit), and `exp(-600)` is 0 in float32: never leave log space. Subtract the log "
        "of the denominator with `torch.logsumexp(..., dim=1, keepdim=True)`, which shifts by "
        "the row's maximum first."
    ),
    answer=(
        "`torch.log_softmax(log_px_given_y + log_prior, dim=1)` (the same as subtracting "
        "`logsumexp(joint, dim=1, keepdim=True)`). Exponentiating first turns every class's "
        "likelihood of a real digit into 0 and the posterior into NaN; only the *differences* "
        "between classes matter, which is why the shift by the maximum is exact."
    ),
)
def _check_class_posterior(fn) -> None:
    g = torch.Generator().manual_seed(2)
    prior = torch.tensor([0.4, 0.05, 0.05, 0.1, 0.1, 0.05, 0.05, 0.1, 0.05, 0.05]).log()
    cases = {  # exp(-600) is 0 and exp(3000) is inf in float32
        "log-likelihoods near -600 nats": torch.randn(6, 10, generator=g) * 3 - 600,
        "log-densities near +3000 nats": torch.randn(4, 10, generator=g) * 3 + 3000,
        "small log-likelihoods": torch.randn(5, 3, generator=g),
    }
    priors = {
        "log-likelihoods near -600 nats": prior,
        "log-densities near +3000 nats": prior.flip(0),
        "small log-likelihoods": torch.tensor([0.6, 0.3, 0.1]).log(),
    }
    for what, log_lik in cases.items():
        # float64 inputs: near 3000 nats, float32 itself rounds to about 2e-4
        log_lik = log_lik.double()
        got = fn(log_lik.clone(), priors[what].double())
        want = class_posterior_reference(log_lik, priors[what])
        expect_close(got, want, f"log p(y | x) for {what} and a non-uniform prior", atol=1e-4)
        expect_close(
            torch.as_tensor(got).double().exp().sum(1),
            torch.ones(len(log_lik), dtype=torch.float64),
            f"the posterior's total probability over the classes ({what})",
            atol=1e-4,
        )


# ---------------------------------------------------------------- 11.2 drawn as asked


def drawn_as_asked_reference(
    probs: Tensor, asked: Tensor, confidence: float = 0.9
) -> tuple[float, Tensor]:
    """The share of samples whose asked class gets probability >= ``confidence``, and per class.

    Args:
        probs: ``(N, K)`` the classifier's probabilities of each sample.
        asked: ``(N,)`` the class each sample was drawn for.
        confidence: the probability a sample needs to count.

    Returns:
        ``(share, per_class)``: a float, and ``(K,)`` the share among each class's samples
        (NaN for a class never asked for).
    """
    probs = torch.as_tensor(probs, dtype=torch.float64)
    asked = torch.as_tensor(asked).long()
    k = probs.shape[1]
    hits, counts = torch.zeros(k, dtype=torch.float64), torch.zeros(k, dtype=torch.float64)
    for row, y in zip(probs, asked.tolist(), strict=True):
        counts[y] += 1
        if row[y] >= confidence:
            hits[y] += 1
    return float(hits.sum() / counts.sum()), hits / counts


def _drawn_by_argmax(probs, asked, confidence=0.9):
    """Counts a sample when the classifier's top class is the one asked, however unsure."""
    probs, asked = torch.as_tensor(probs), torch.as_tensor(asked).long()
    hit = (probs.argmax(1) == asked).double()
    per_class = torch.stack([hit[asked == k].mean() for k in range(probs.shape[1])])
    return float(hit.mean()), per_class


def _drawn_strictly_above(probs, asked, confidence=0.9):
    """Needs a probability strictly above the confidence: a sample at exactly 0.9 is lost."""
    probs, asked = torch.as_tensor(probs), torch.as_tensor(asked).long()
    hit = (probs[torch.arange(len(asked)), asked] > confidence).double()
    per_class = torch.stack([hit[asked == k].mean() for k in range(probs.shape[1])])
    return float(hit.mean()), per_class


def _drawn_per_class_over_all(probs, asked, confidence=0.9):
    """Divides each class's hits by all samples, not by that class's samples."""
    probs, asked = torch.as_tensor(probs), torch.as_tensor(asked).long()
    hit = (probs[torch.arange(len(asked)), asked] >= confidence).double()
    per_class = torch.stack([hit[asked == k].sum() / len(asked) for k in range(probs.shape[1])])
    return float(hit.mean()), per_class


@exercise(
    "11.2",
    "drawn as asked",
    reference=drawn_as_asked_reference,
    wrong=[_drawn_by_argmax, _drawn_strictly_above, _drawn_per_class_over_all],
    hint=(
        "A sample counts when the classifier gives the class it was *asked* for a probability of "
        "at least `confidence`: being the classifier's top class is not enough. Pick each "
        "sample's probability of its own class with `probs[torch.arange(len(asked)), asked]` and "
        "compare with `>=`. The overall share is the mean over all samples; each class's share is "
        "the mean over *that class's* samples only (`hit[asked == k].mean()`)."
    ),
    answer=(
        "`hit = probs[arange(N), asked] >= confidence`; `share = hit.float().mean()`; "
        "`per_class[k] = hit[asked == k].float().mean()`. With the argmax instead, a sample the "
        "classifier reads as a 4 with probability 0.3 would count as a well-drawn 4."
    ),
)
def _check_drawn_as_asked(fn) -> None:
    g = torch.Generator().manual_seed(3)
    k = 4
    # float64, so that a probability of exactly 0.9 ties with the confidence 0.9
    probs = (torch.randn(40, k, generator=g, dtype=torch.float64) * 3).softmax(1)
    asked = torch.arange(k).repeat_interleave(10)
    # ties with the threshold, and unsure top classes (top class, probability below 0.9)
    probs[0] = torch.tensor([0.9, 0.05, 0.03, 0.02], dtype=torch.float64)
    probs[11] = torch.tensor([0.0, 0.9, 0.1, 0.0], dtype=torch.float64)
    probs[12] = torch.tensor([0.0, 0.9, 0.0, 0.1], dtype=torch.float64)
    probs[20] = torch.tensor([0.2, 0.2, 0.4, 0.2], dtype=torch.float64)
    probs[21] = torch.tensor([0.1, 0.1, 0.45, 0.35], dtype=torch.float64)
    probs[30] = torch.tensor([0.0, 0.0, 0.05, 0.95], dtype=torch.float64)
    order = torch.randperm(40, generator=g)  # the classes come in no particular order
    probs, asked = probs[order], asked[order]
    # the unequal counts: drop three samples of class 3
    keep = torch.ones(40, dtype=torch.bool)
    keep[(asked == 3).nonzero()[:3, 0]] = False
    probs, asked = probs[keep], asked[keep]
    for confidence in (0.9, 0.5):
        got = fn(probs.clone(), asked.clone(), confidence)
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise ExerciseFailed(f"return a pair (share, per_class), got {got!r:.60}")
        share, per_class = got
        want_share, want_per_class = drawn_as_asked_reference(probs, asked, confidence)
        expect_close(
            float(share), want_share, f"the overall share at confidence {confidence}", atol=1e-9
        )
        expect(
            torch.as_tensor(per_class).shape == (k,),
            f"per_class must hold one share per class, shape ({k},), got "
            f"{tuple(torch.as_tensor(per_class).shape)}",
        )
        expect_close(
            per_class, want_per_class, f"the per-class shares at confidence {confidence}", atol=1e-9
        )


# ------------------------------------------------------------------- 11.4 the hybrid loss


def hybrid_loss_reference(log_p: Tensor, y: Tensor, weight: float) -> Tensor:
    """``−mean log p(x | y) + weight · cross-entropy of the Bayes posterior`` (uniform prior)."""
    nll = -log_p[torch.arange(len(y)), y].mean()
    log_posterior = log_p - torch.logsumexp(log_p, dim=1, keepdim=True)
    return nll + weight * -log_posterior[torch.arange(len(y)), y].mean()


def _hybrid_unnormalised(log_p, y, weight):
    """Takes −log p(x | y) itself as the cross-entropy: no normalisation over the classes."""
    nll = -log_p[torch.arange(len(y)), y].mean()
    return nll + weight * nll


def _hybrid_weight_on_nll(log_p, y, weight):
    """Puts the weight on the likelihood term instead of the cross-entropy."""
    nll = -log_p[torch.arange(len(y)), y].mean()
    return weight * nll + nn.functional.cross_entropy(log_p, y)


def _hybrid_argmax_nll(log_p, y, weight):
    """Scores each image under its most likely class, not under the class it has."""
    nll = -log_p.max(1).values.mean()
    return nll + weight * nn.functional.cross_entropy(log_p, y)


@exercise(
    "11.4",
    "the hybrid loss",
    reference=hybrid_loss_reference,
    wrong=[_hybrid_unnormalised, _hybrid_weight_on_nll, _hybrid_argmax_nll],
    hint=(
        "Two terms, both means over the batch. The likelihood term is the NLL of each image "
        "under *its own* class: `-log_p[torch.arange(len(y)), y].mean()`. The classifier term "
        "is the cross-entropy of Bayes' rule with a uniform prior: normalise each row over the "
        "classes first (`log_p - torch.logsumexp(log_p, dim=1, keepdim=True)`), then take minus "
        "the asked class's value. Only the second term is multiplied by `weight`."
    ),
    answer=(
        "`-log_p[arange(B), y].mean() + weight * F.cross_entropy(log_p, y)` "
        "(`cross_entropy` applies the log-softmax over the classes itself). Without the "
        "normalisation the second term is just the NLL again and never compares the classes; "
        "this is `course_utils.glow.train.hybrid_loss`."
    ),
)
def _check_hybrid_loss(fn) -> None:
    g = torch.Generator().manual_seed(4)
    log_p = torch.randn(12, 10, generator=g) * 5 - 700
    y = torch.randint(0, 10, (12,), generator=g)
    for weight in (0.0, 1.0, 30.0):
        got = fn(log_p.clone(), y.clone(), weight)
        expect(
            torch.as_tensor(got).numel() == 1,
            f"return one number (the batch's loss), got shape {tuple(torch.as_tensor(got).shape)}",
        )
        expect_close(
            torch.as_tensor(got).reshape(()),
            hybrid_loss(log_p, y, weight),
            f"the loss of 12 images with weight {weight}",
            atol=1e-3,
            rtol=1e-6,
        )
