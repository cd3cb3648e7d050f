"""Shipped models: sha256 verification, clear errors, the digit classifier's score."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from course_utils import pretrained, release
from course_utils.core.checkpoints import checkpoint_differences, load_checkpoint
from course_utils.glow import measure
from course_utils.glow.digits import DigitClassifier, probabilities, recognisable
from course_utils.glow.measure import measure_glow
from course_utils.glow.model import Glow
from course_utils.glow.recipes import RECIPES, Recipe
from course_utils.glow.train import run_identity
from course_utils.pretrained import PretrainedError, load, manifest, sha256sum
from course_utils.release import make_glow, save_model


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """A copy of the shipped folder, free to damage."""
    folder = tmp_path / "pretrained"
    shutil.copytree(pretrained.PRETRAINED_DIR, folder)
    return folder


def test_every_manifest_matches_its_file() -> None:
    names = sorted(p.stem for p in pretrained.PRETRAINED_DIR.glob("*.json"))
    assert "digit-classifier" in names
    total = 0
    for name in names:
        info = manifest(name)
        path = pretrained.PRETRAINED_DIR / info["file"]
        assert sha256sum(path) == info["sha256"]
        assert path.stat().st_size <= 20e6
        total += path.stat().st_size
    assert total <= 60e6


@pytest.mark.parametrize("name", sorted(p.stem for p in pretrained.PRETRAINED_DIR.glob("*.json")))
def test_each_manifests_command_is_one_the_release_command_accepts(name: str) -> None:
    # The command a manifest records must make this model again: the same name, data and recipe.
    info = manifest(name)
    program, _, args = info["command"].partition(" -m course_utils.release ")
    assert program == "python" and args, info["command"]
    parsed = release.parser().parse_args(shlex.split(args))
    assert parsed.name == name
    if info["kind"] == "glow":
        assert info["dataset"].split(" ")[0] == parsed.dataset
        assert RECIPES[parsed.recipe] == Recipe.from_dict(info["recipe_settings"])
        assert parsed.minutes == pytest.approx(info["training_minutes"], abs=1)
    else:
        assert (parsed.epochs, parsed.seed) == (info["epochs"], info["seed"])


def test_load_refuses_damaged_missing_and_unknown(shipped: Path) -> None:
    model = load("digit-classifier", shipped)
    assert isinstance(model, DigitClassifier) and not model.training
    weights = shipped / "digit-classifier.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(PretrainedError, match="damaged.*sha256.*git checkout"):
        load("digit-classifier", shipped)
    weights.unlink()
    with pytest.raises(PretrainedError, match="missing: no file"):
        load("digit-classifier", shipped)
    with pytest.raises(PretrainedError, match="no pretrained model 'nope'.*digit-classifier"):
        load("nope", shipped)


def test_load_refuses_weights_of_another_shape(tmp_path: Path) -> None:
    wrong = torch.nn.Linear(3, 2)
    save_model(wrong, tmp_path / "digit-classifier.pt", {"kind": "digit-classifier"})
    with pytest.raises(PretrainedError, match="do not fit"):
        load("digit-classifier", tmp_path)
    info = json.loads((tmp_path / "digit-classifier.json").read_text())
    assert info["sha256"] == sha256sum(tmp_path / "digit-classifier.pt")


def test_classifier_is_accurate_and_calibrated_on_real_digits(shared_data: Path) -> None:
    from course_utils.core.data import load_mnist

    images, labels = load_mnist("mnist", "test")
    model = load("digit-classifier")
    probs = probabilities(model, images)
    accuracy = float((probs.argmax(1) == labels).float().mean())
    info = manifest("digit-classifier")
    assert round(accuracy, 4) == info["test_accuracy"]  # the manifest's figure, re-measured
    assert accuracy >= 0.99
    real = recognisable(model, images[:2000])
    assert real.share >= 0.9 and real.digits_drawn == 10
    assert sum(real.counts) == round(real.share * real.n)


def test_recognisable_rejects_noise_and_non_finite() -> None:
    model = load("digit-classifier")
    noise = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    noise[0, 0, 0, 0] = float("nan")
    result = recognisable(model, noise)
    assert result.share < 0.2
    assert float(probabilities(model, noise[:1]).sum()) == 0.0  # NaN image: never recognisable
    with pytest.raises(ValueError, match="shape \\(batch, 1, 28, 28\\)"):
        recognisable(model, torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="empty"):
        recognisable(model, torch.zeros(0, 1, 28, 28))
    with pytest.raises(ValueError, match="confidence"):
        recognisable(model, noise, confidence=1.5)


@pytest.mark.slow
def test_make_glow_writes_a_model_whose_figures_load_reproduces(
    tmp_path: Path, shared_data, monkeypatch: pytest.MonkeyPatch
):
    # The make path as it is, scored on the first 500 test digits instead of all 10,000
    # (benchmarks/pretrained.py measures the shipped models on the whole split).
    splits = measure.image_splits
    monkeypatch.setattr(
        measure, "image_splits", lambda name: (splits(name)[0], splits(name)[1][:500])
    )
    info = make_glow("glow-tiny", "mnist", "small", minutes=0.02, device="cpu", folder=tmp_path)
    model = load("glow-tiny", tmp_path)
    assert info["kind"] == "glow" and info["steps"] >= 1 and info["test_images"] == 500
    assert info["command"].startswith("python -m course_utils.release glow-tiny")
    again = measure_glow(model, "mnist")
    assert again["test_bits_per_dim"] == info["test_bits_per_dim"]
    assert again["recognisable_share"] == info["recognisable_share"]
    assert (tmp_path / "glow-tiny.run.pt").is_file()  # the resumable run, to continue later


#: Every shipped Glow with a resumable run file (glow-mnist, glow-fashion-mnist, ...).
SHIPPED_RUNS = sorted(
    p.name.removesuffix(".run.pt") for p in pretrained.PRETRAINED_DIR.glob("*.run.pt")
)


def test_the_shipped_glows_have_their_run_files() -> None:
    assert {"glow-mnist", "glow-fashion-mnist", "glow-coloured-mnist"} <= set(SHIPPED_RUNS)


@pytest.mark.parametrize("name", SHIPPED_RUNS)
def test_each_shipped_run_file_resumes_with_its_manifests_command(name: str) -> None:
    # `make NAME --recipe R` continues NAME.run.pt: the file must fit the run that
    # command builds today (its recipe, dataset, architecture, optimizer and schedule).
    info = manifest(name)
    recipe = RECIPES[info["recipe"]]
    assert Recipe.from_dict(info["recipe_settings"]) == recipe
    dataset = info["command"].split("--dataset ")[1].split()[0]
    model = Glow(recipe.model)
    optimizer, scheduler = recipe.make_optimizer(model)
    state = load_checkpoint(pretrained.PRETRAINED_DIR / f"{name}.run.pt")
    assert state["history"]["steps"] >= info["steps"]
    assert not checkpoint_differences(
        state,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        extra=run_identity(model, dataset, recipe),
    )


# ------------------------------------------------ a damaged manifest is named, not a KeyError


@pytest.fixture
def classifier_only(tmp_path: Path) -> Path:
    """A folder holding only the digit classifier's two files, free to damage."""
    folder = tmp_path / "models"
    folder.mkdir()
    for suffix in (".pt", ".json"):
        name = f"digit-classifier{suffix}"
        shutil.copy(pretrained.PRETRAINED_DIR / name, folder / name)
    return folder


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda info: info.pop("sha256"), r"'sha256' is missing, expected the weights' sha256"),
        (lambda info: info.pop("file"), r"'file' is missing, expected the weights' file name"),
        (lambda info: info.pop("kind"), r"'kind' is missing"),
        (lambda info: info.update(sha256="abc"), r"'sha256' is 'abc', expected 64 lowercase"),
        (lambda info: info.update(file="../x.pt"), r"'file' is '../x.pt', expected a file name"),
        (lambda info: info.update(file=3), r"'file' is 3"),
    ],
)
def test_a_damaged_manifest_names_what_is_wrong(classifier_only: Path, damage, match) -> None:
    path = classifier_only / "digit-classifier.json"
    info = json.loads(path.read_text())
    damage(info)
    path.write_text(json.dumps(info))
    with pytest.raises(
        PretrainedError, match=rf"manifest .*digit-classifier.json is damaged: {match}"
    ):
        load("digit-classifier", classifier_only)
    row = pretrained.table(classifier_only).splitlines()[1]
    assert row.startswith("digit-classifier") and "damaged" in row


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "", "\xff\xfe"])
def test_an_unreadable_manifest_is_one_row_of_the_list_not_a_crash(
    classifier_only: Path, text: str, capsys
) -> None:
    (classifier_only / "broken.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(PretrainedError, match=r"broken.json is (unreadable|damaged)"):
        manifest("broken", classifier_only)
    rows = pretrained.table(classifier_only).splitlines()
    assert rows[1].startswith("broken") and "git checkout" in rows[1]
    assert rows[2].startswith("digit-classifier") and "test_accuracy" in rows[2]
    assert isinstance(load("digit-classifier", classifier_only), DigitClassifier)


def test_weights_without_a_model_state_are_named(classifier_only: Path) -> None:
    weights = classifier_only / "digit-classifier.pt"
    torch.save({"extra": {}}, weights)
    info = json.loads((classifier_only / "digit-classifier.json").read_text())
    info["sha256"] = sha256sum(weights)
    (classifier_only / "digit-classifier.json").write_text(json.dumps(info))
    with pytest.raises(PretrainedError, match="holds no model state"):
        load("digit-classifier", classifier_only)
