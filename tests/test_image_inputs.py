"""Every entry point that takes images in [0, 1] refuses the same careless inputs, the same way.

One check (``course_utils.core.checks.check_unit_images``) is shared by a flow's
density, the inpainting methods and their starts, the hole metrics and the digit
classifier; here each of them is given each kind of careless image (0..255 floats,
[-1, 1], NaN, uint8, float64 for a float32 model, an empty batch) and must refuse
it with a message that names the argument, instead of answering with NaN, a
clamped start, an inflated share or a PSNR of -43 dB.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from course_utils import inpaint as ip
from course_utils.anomaly import compressed_bits_per_dim
from course_utils.core.checks import check_uint8_images, check_unit_images
from course_utils.core.metrics import masked_mse, masked_psnr
from course_utils.glow.digits import DigitClassifier, probabilities, recognisable
from course_utils.glow.model import Glow, dequantize
from course_utils.pretrained import load

pytestmark = pytest.mark.usefixtures("rng")


@pytest.fixture(scope="module")
def model() -> Glow:
    torch.manual_seed(0)
    m = Glow(levels=2, blocks=1, hidden=8, logit_alpha=0.05)
    with torch.no_grad():
        m.log_prob(torch.rand(16, 1, 28, 28))
    return m.eval()


def images(n: int = 2) -> torch.Tensor:
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 6:22, 10:14] = 0.9
    return x + 0.01


MASK = ip.make_masks("centre", 2, size=8)

#: A careless variant of good images, and what the message must say.
CARELESS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], str]] = {
    "0..255 floats": (lambda x: x * 255, r"must lie in \[0, 1\].*divide by 255"),
    "[-1, 1]": (lambda x: x * 2 - 1, r"must lie in \[0, 1\].*\(x \+ 1\) / 2"),
    "NaN": (lambda x: x.index_put((torch.tensor([0]),), torch.tensor(math.nan)), "NaN"),
    "uint8": (lambda x: (x * 255).to(torch.uint8), "uint8"),
    "empty": (lambda x: x[:0], "empty batch"),
}

#: Entry point → a call that puts the careless images in the named argument.
ENTRY_POINTS: dict[str, tuple[str, Callable[[Glow, torch.Tensor], object]]] = {
    "Glow.log_prob": ("x", lambda m, bad: m.log_prob(bad)),
    "check_inputs": ("images", lambda m, bad: ip.check_inputs(bad, MASK[: len(bad)])),
    "pixel_inpaint images": (
        "images",
        lambda m, bad: ip.pixel_inpaint(m, bad, MASK[: len(bad)], steps=1),
    ),
    "pixel_inpaint init": (
        "init",
        lambda m, bad: ip.pixel_inpaint(m, images(), MASK, init=_same_shape(bad), steps=1),
    ),
    "posterior_inpaint init": (
        "init",
        lambda m, bad: ip.posterior_inpaint(
            m, images(), MASK, chains=1, steps=2, warmup=1, init=_same_shape(bad)
        ),
    ),
    "latent_inpaint init": (
        "init",
        lambda m, bad: ip.latent_inpaint(m, images(), MASK, steps=1, init=_same_shape(bad)),
    ),
    "kernel_fill train_images": (
        "train_images",
        lambda m, bad: ip.kernel_fill(images(), MASK, _same_shape(bad)),
    ),
    "masked_mse pred": ("pred", lambda m, bad: masked_mse(bad, images(len(bad)), MASK[: len(bad)])),
    "masked_psnr target": (
        "target",
        lambda m, bad: masked_psnr(images(len(bad)), bad, MASK[: len(bad)]),
    ),
}


def _same_shape(bad: torch.Tensor) -> torch.Tensor:
    """An argument that must have the images' shape: the empty case is left to the others."""
    return bad if len(bad) else bad.new_zeros((2, 1, 28, 28)).fill_(math.nan)


@pytest.mark.parametrize("careless", list(CARELESS))
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_refuses_careless_images_by_name(
    model: Glow, entry: str, careless: str
) -> None:
    argument, call = ENTRY_POINTS[entry]
    spoil, match = CARELESS[careless]
    if careless == "uint8" and entry == "Glow.log_prob":
        match = "dequantize"
    if careless == "empty" and argument in ("init", "train_images"):
        match = "NaN"  # those take the images' shape; _same_shape gave them a NaN batch
    if careless == "empty" and entry == "masked_psnr target":
        argument = "pred"  # both are empty there: the first is named
    with pytest.raises(ValueError, match=match) as info:
        call(model, spoil(images()))
    assert str(info.value).startswith(argument), str(info.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: ip.pixel_inpaint(m, x, MASK, steps=1),
        lambda m, x: ip.posterior_inpaint(m, x, MASK, chains=1, steps=2, warmup=1),
        lambda m, x: ip.latent_inpaint(m, x, MASK, steps=1),
        lambda m, x: ip.flow_kernel_inpaint(m, x, MASK, images(4), k=2),
        lambda m, x: m.log_prob(x),
    ],
    ids=["pixel", "posterior", "latent", "kernel+flow", "log_prob"],
)
def test_float64_images_into_a_float32_flow_are_named_not_a_normflows_error(model, call):
    with pytest.raises(ValueError, match=r"is float64 but the model is float32; convert"):
        call(model, images().double())


def test_a_good_start_is_kept_as_given(model: Glow) -> None:
    start = torch.where(MASK, torch.full_like(images(), 0.3), images())
    out = ip.pixel_inpaint(model, images(), MASK, init=start, steps=0)
    assert torch.equal(out.images, start)  # no clamping, no change: the start is the answer


def test_masked_metrics_refuse_soft_masks_and_accept_one_mask_for_a_batch() -> None:
    x = images(3)
    soft = MASK[:1].float() * 0.5
    with pytest.raises(ValueError, match=r"mask must be boolean or hold only 0 and 1"):
        masked_mse(x, x, soft.expand(3, -1, -1, -1))
    with pytest.raises(ValueError, match="mask must be boolean"):
        ip.check_inputs(x, soft.expand(3, -1, -1, -1))
    one = MASK[:1]
    got = masked_mse(x * 0.5, x, one)
    want = torch.stack([((x[i] * 0.5 - x[i])[one[0]] ** 2).mean() for i in range(3)])
    torch.testing.assert_close(got, want)
    assert masked_psnr(x * 0.5, x, one.float()).shape == (3,)


def test_the_recognisable_share_refuses_images_outside_the_unit_interval() -> None:
    classifier = load("digit-classifier")
    x = images(4)
    for spoiled, hint in ((x * 255, "divide by 255"), (x * 2 - 1, r"\(x \+ 1\) / 2")):
        with pytest.raises(ValueError, match=rf"images must lie in \[0, 1\].*{hint}"):
            recognisable(classifier, spoiled)
    # uint8 digits are read as 0..255 and NaN samples count as not recognisable, as before.
    assert probabilities(classifier, (x * 255).to(torch.uint8)).shape == (4, 10)
    nan = x.clone()
    nan[0] = math.nan
    assert float(probabilities(classifier, nan)[0].sum()) == 0.0


def test_channels_last_images_are_not_read_as_a_batch_of_rows() -> None:
    one = torch.zeros(28, 28, 1, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"looks like channels last.*permute\(2, 0, 1\)\[None\]"):
        dequantize(one)
    with pytest.raises(ValueError, match=r"permute\(0, 3, 1, 2\)"):
        dequantize(torch.zeros(5, 28, 28, 1, dtype=torch.uint8))
    with pytest.raises(ValueError, match="channels last"):
        recognisable(DigitClassifier(), torch.rand(28, 28, 1))
    with pytest.raises(ValueError, match="channels last"):
        compressed_bits_per_dim(one.numpy())
    assert dequantize(torch.zeros(5, 28, 28, dtype=torch.uint8)).shape == (5, 1, 28, 28)
    assert dequantize(torch.zeros(2, 1, 2, 2, dtype=torch.uint8)).shape == (2, 1, 2, 2)
    assert check_uint8_images("k", torch.zeros(2, 3, 28, 28, dtype=torch.uint8)).shape[1] == 3


def test_the_check_returns_the_images_and_names_what_it_got() -> None:
    x = images()
    assert check_unit_images("x", x) is x
    with pytest.raises(ValueError, match=r"x must be a tensor of images, got list"):
        check_unit_images("x", x.tolist())
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 3, 28, 28\), got"):
        check_unit_images("x", x, shape=(3, 28, 28))
    with pytest.raises(ValueError, match=r"contains NaN or inf values \(in 1 of 2 images\)"):
        check_unit_images("x", x.index_put((torch.tensor([1]),), torch.tensor(math.inf)))


def test_a_comparison_of_no_images_is_refused_not_a_nan_psnr(model: Glow) -> None:
    with pytest.raises(ValueError, match="images is an empty batch"):
        ip.compare(model, images()[:0], {"centre": MASK[:0]}, images(4), methods=("zero",))
    with pytest.raises(ValueError, match="mask must be boolean"):
        ip.compare(model, images(), {"soft": MASK.float() / 2}, images(4), methods=("zero",))
