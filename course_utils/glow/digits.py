"""A small digit classifier that scores how many of a model's samples are recognisable digits.

Bits per dimension say how well a model predicts real digits; they do not say
whether its samples look like digits. The **recognisable share** does: a
classifier trained on MNIST's 60,000 training digits labels each sample, and a
sample counts as recognisable when the classifier gives one class a
probability of at least 0.9. The class histogram of those samples says whether
the model draws all ten digits. The same score on real test digits is the
calibration: what a perfect model would get.

The classifier's weights are shipped under ``pretrained/`` and loaded with
:func:`course_utils.pretrained.load` (``"digit-classifier"``);
``python -m course_utils.release digit-classifier`` retrains it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.core.checks import check_unit_images
from course_utils.core.data import load_mnist

__all__ = [
    "CONFIDENCE",
    "DigitClassifier",
    "probabilities",
    "Recognisable",
    "recognisable",
    "non_digits",
    "train_classifier",
]

Tensor = torch.Tensor

#: Probability the classifier must give one class for a sample to count as recognisable.
CONFIDENCE = 0.9


class DigitClassifier(nn.Module):
    """A LeNet-style CNN: ``(batch, 1, 28, 28)`` images in [0, 1] → ``(batch, 10)`` logits.

    >>> DigitClassifier()(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def _check_images(images: Tensor) -> Tensor:
    """Images in [0, 1] as float ``(batch, 1, 28, 28)``; ``uint8`` ones are divided by 255.

    Values outside [0, 1] are refused: the classifier is sure of far more
    images given as 0..255 floats or in [−1, 1] (real test digits score 100 %
    instead of 97 %), so the recognisable share would be inflated, not wrong
    by an error. Non-finite images pass (a sample a model failed to draw):
    they are never recognisable.
    """
    if isinstance(images, torch.Tensor) and images.dtype == torch.uint8:
        images = images.float() / 255.0
    images = check_unit_images(
        "images", images, shape=(1, 28, 28), allow_hw=True, allow_nonfinite=True
    )
    return images.float()


@torch.no_grad()
def probabilities(classifier: nn.Module, images: Tensor, batch_size: int = 1000) -> Tensor:
    """Class probabilities ``(batch, 10)`` of images in [0, 1] (or ``uint8``).

    A non-finite image gets all-zero probabilities: it is never recognisable.

    Raises:
        ValueError: not ``(batch, 1, 28, 28)`` (or ``(batch, 28, 28)``) images,
            an empty batch, or finite values outside [0, 1] (0..255 floats,
            [−1, 1]).
    """
    images = _check_images(images)
    classifier.eval()
    finite = torch.isfinite(images).flatten(1).all(dim=1)
    probs = torch.zeros(len(images), 10)
    safe = torch.where(finite[:, None, None, None], images, torch.zeros_like(images))
    out = torch.cat([classifier(part).softmax(dim=1) for part in safe.split(batch_size)])
    probs[finite] = out[finite]
    return probs


@dataclass(frozen=True)
class Recognisable:
    """What the classifier makes of a set of images.

    Attributes:
        share: fraction of images with a class probability ≥ :data:`CONFIDENCE`.
        counts: how many recognisable images of each digit 0-9.
        n: images scored.
    """

    share: float
    counts: tuple[int, ...]
    n: int

    @property
    def digits_drawn(self) -> int:
        """How many of the ten digits appear among the recognisable images."""
        return sum(c > 0 for c in self.counts)

    def __str__(self) -> str:
        return (
            f"{self.share:.1%} recognisable of {self.n:,} "
            f"({self.digits_drawn}/10 digits drawn; per digit {list(self.counts)})"
        )


def recognisable(
    classifier: nn.Module, images: Tensor, confidence: float = CONFIDENCE
) -> Recognisable:
    """The recognisable share and class histogram of ``images`` (``(batch, 1, 28, 28)``)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    probs = probabilities(classifier, images)
    best, label = probs.max(dim=1)
    sure = best >= confidence
    counts = torch.bincount(label[sure], minlength=10)
    return Recognisable(float(sure.float().mean()), tuple(int(c) for c in counts), len(probs))


def non_digits(x: Tensor, generator: torch.Generator) -> Tensor:
    """Images that are not digits, as many as ``x`` ``(batch, 1, 28, 28)``, made from it.

    A quarter each: uniform noise; the digits' own pixels shuffled (the same
    ink, no shape); smooth random blobs; and two digits overlaid.
    """
    n = len(x)
    q = -(-n // 4)
    noise = torch.rand(q, 1, 28, 28, generator=generator)
    flat = x[:q].flatten(1)
    order = torch.argsort(torch.rand(flat.shape, generator=generator), dim=1)
    shuffled = flat.gather(1, order).view(-1, 1, 28, 28)
    blobs = torch.randn(q, 1, 28, 28, generator=generator)
    blobs = F.avg_pool2d(F.avg_pool2d(blobs, 5, 1, 2), 5, 1, 2)
    blobs = ((blobs - blobs.mean()) * 6).sigmoid()
    other = x[torch.randperm(n, generator=generator)[:q]]
    overlaid = torch.maximum(x[:q], other.flip(-1))
    return torch.cat([noise, shuffled, blobs, overlaid])[:n]


def train_classifier(
    epochs: int = 3, batch_size: int = 128, lr: float = 2e-3, seed: int = 0
) -> tuple[DigitClassifier, float]:
    """Train :class:`DigitClassifier` on MNIST's 60,000 training digits.

    Small random shifts (up to 2 pixels) make it robust to samples that are
    not centred like MNIST's digits. A classifier trained on digits alone is
    confidently wrong on things that are not digits (uniform noise comes out
    as an "8" with probability 0.99), so every batch also holds as many
    :func:`non_digits` made from it, trained towards a uniform prediction
    (*outlier exposure*, Hendrycks et al., 2019): a sample the classifier is
    sure of looks like a digit, not merely unlike the others.

    Returns the model (eval mode) and its accuracy on the official 10,000 test
    digits.
    """
    torch.manual_seed(seed)
    train_x, train_y = load_mnist("mnist", "train")
    test_x, test_y = load_mnist("mnist", "test")
    train_x = train_x[:, None].float() / 255.0
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(train_x) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=gen)
        for i in range(len(train_x) // batch_size):
            idx = order[i * batch_size : (i + 1) * batch_size]
            x = train_x[idx]
            dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
            x = torch.roll(x, shifts=(dx, dy), dims=(2, 3))
            outliers = non_digits(x, gen)
            logits = model(torch.cat([x, outliers]))
            loss = F.cross_entropy(logits[: len(x)], train_y[idx])
            loss = loss - 0.5 * logits[len(x) :].log_softmax(dim=1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    accuracy = float((probabilities(model, test_x).argmax(1) == test_y).float().mean())
    return model, accuracy
