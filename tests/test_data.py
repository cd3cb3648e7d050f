"""course_utils.core.data: the IDX loader, its checksums, the download path and moons.

The download path is exercised for real, against an HTTP server on 127.0.0.1
that serves copies of the offline files; nothing leaves the machine.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import shutil
import socket
import socketserver
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
import torch

from course_utils.core import data
from course_utils.core.data import CorruptFileError, DatasetNotFoundError, load_mnist, locate

MNIST_TEST = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

# The table of /work/shared/data/README.md, copied here as the oracle:
# file -> (gzip md5 of the shared copy, upstream gzip md5, payload md5).
SHARED_TABLE = {
    "mnist/train-images-idx3-ubyte.gz": (
        "c7dfcf1bfd3481a40f7b3aedbdbd083c",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    "mnist/train-labels-idx1-ubyte.gz": (
        "d289298a347a2cc65765a3c81043ba88",
        "d53e105ee54ea40749a09fcbcd1e9432",
        "a25bea736e30d166cdddb491f175f624",
    ),
    "mnist/t10k-images-idx3-ubyte.gz": (
        "9fb629c4189551a2d022fa330f9573f3",
        "9fb629c4189551a2d022fa330f9573f3",
        "2646ac647ad5339dbf082846283269ea",
    ),
    "mnist/t10k-labels-idx1-ubyte.gz": (
        "ec29112dd5afa0611ce80d1b7f02629c",
        "ec29112dd5afa0611ce80d1b7f02629c",
        "27ae3e4e09519cfbb04c329615203637",
    ),
    "fashion-mnist/train-images-idx3-ubyte.gz": (
        "cf8536b0aa1a6ac5fa3f23001093305c",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ),
    "fashion-mnist/train-labels-idx1-ubyte.gz": (
        "10bea18fdb374794d4bb42e356e600c9",
        "25c81989df183df01b3e8a0aad5dffbe",
        "9018921c3c673c538a1fc5bad174d6f9",
    ),
    "fashion-mnist/t10k-images-idx3-ubyte.gz": (
        "f78720b4224f21cce2f2ccf2d7a94c9a",
        "bef4ecab320f06d8554ea6380940ec79",
        "8181f5470baa50b63fa0f6fddb340f0a",
    ),
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": (
        "0d30e22e447f3c33dab9ed536400ac01",
        "bb300cfdad3c16e7a12a480ee83cd310",
        "15d484375f8d13e6eb1aabb0c3f46965",
    ),
}
# Upstream MNIST training files (README, "for the download code").
MNIST_TRAIN_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
}
# Published class counts of the MNIST test split.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ------------------------------------------------------------------ helpers


def _spec_for(relpath: str) -> data.IdxFile:
    name, filename = relpath.split("/")
    for images, labels in data.DATASETS[name].files.values():
        for spec in (images, labels):
            if spec.name == filename:
                return spec
    raise KeyError(relpath)


def _payload(path: Path) -> bytes:
    with gzip.open(path, "rb") as fh:
        return fh.read()


def _idx_labels(values: bytes) -> bytes:
    """A gzip IDX file of unsigned-byte labels."""
    return gzip.compress(b"\x00\x00\x08\x01" + len(values).to_bytes(4, "big") + values)


def _files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def mnist_copy(shared_data: Path, tmp_path: Path) -> Path:
    """A writable copy of the MNIST test files: ``<tmp>/copy/mnist/<file>``."""
    src = shared_data / "mnist"
    if not all((src / f).is_file() for f in MNIST_TEST):
        pytest.skip(f"MNIST test files missing under {src}")
    dest = tmp_path / "copy" / "mnist"
    dest.mkdir(parents=True)
    for f in MNIST_TEST:
        shutil.copyfile(src / f, dest / f)
    return dest


class _RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, remembers which paths were asked for, keeps quiet."""

    timeout = 10  # seconds a stalled client may hold a request open

    def __init__(self, *args, requests: list[str], **kwargs) -> None:
        self._requests = requests
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self._requests.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _serve(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve ``folder`` on 127.0.0.1; yield (base URL, list of requested paths)."""
    requests: list[str] = []
    handler = partial(_RecordingHandler, directory=str(folder), requests=requests)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive(), "the test HTTP server did not stop"


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], object]:
    """``serve(folder)``: a context manager running a local HTTP server on ``folder``."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return _serve


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No local data folder, online, and an empty cache of our own; returns the cache."""
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("COURSE_CACHE_DIR", str(cache))
    return cache


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------- the offline files


def test_mnist_test_split(shared_data: Path) -> None:
    images, labels = load_mnist("mnist", "test", root=shared_data)
    assert images.shape == (10000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10000,) and labels.dtype == torch.int64
    assert int(labels.min()) == 0 and int(labels.max()) == 9
    assert torch.bincount(labels, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert int(labels[0]) == 7  # the famous first test digit
    assert int(images.max()) == 255 and int(images.min()) == 0


def test_mnist_via_course_data_dir(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_DATA_DIR", str(shared_data))
    images_path, labels_path = locate("mnist", "test")
    assert images_path == shared_data / "mnist" / MNIST_TEST[0]
    assert labels_path == shared_data / "mnist" / MNIST_TEST[1]


@pytest.mark.parametrize(("split", "n"), [("train", 60000), ("test", 10000)])
def test_fashion_mnist(shared_data: Path, split: str, n: int) -> None:
    images, labels = load_mnist("fashion-mnist", split, root=shared_data)
    assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (n,) and labels.dtype == torch.int64
    # Fashion-MNIST is balanced: exactly n/10 examples of each class.
    assert torch.bincount(labels, minlength=10).tolist() == [n // 10] * 10


def test_flat_folder_layout(mnist_copy: Path) -> None:
    """``<root>/<file>`` works as well as ``<root>/<name>/<file>``."""
    images, labels = load_mnist("mnist", "test", root=mnist_copy)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)


@pytest.mark.parametrize("relpath", sorted(SHARED_TABLE))
def test_checksums_match_shared_table(shared_data: Path, relpath: str) -> None:
    shared_md5, upstream_md5, payload_md5 = SHARED_TABLE[relpath]
    path = shared_data / relpath
    if not path.is_file():
        pytest.skip(f"{path} not present")
    assert data.md5sum(path) == shared_md5
    assert hashlib.md5(_payload(path)).hexdigest() == payload_md5
    spec = _spec_for(relpath)
    # Both the upstream digest and the re-compressed copy's are accepted ...
    assert {shared_md5, upstream_md5} <= set(spec.md5)
    assert spec.payload_md5 == payload_md5
    # ... and so the loader takes the shared file as a valid cached copy.
    assert data._is_valid(path, spec)


def test_mnist_train_checksums() -> None:
    """The upstream digests come first: the download checks against them."""
    images, labels = data.DATASETS["mnist"].files["train"]
    assert {images.name: images.md5[0], labels.name: labels.md5[0]} == MNIST_TRAIN_MD5
    assert all(
        spec.payload_md5
        for split in data.DATASETS.values()
        for pair in split.files.values()
        for spec in pair
    )


def test_unknown_dataset_or_split() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        locate("cifar", "test")
    with pytest.raises(ValueError, match="unknown split"):
        locate("mnist", "valid")


# ------------------------------------------------- which dataset is this file?


def test_a_flat_folder_of_mnist_is_not_served_as_fashion_mnist(mnist_copy: Path) -> None:
    """MNIST and Fashion-MNIST share file names; the digest tells them apart."""
    with pytest.raises(data.WrongDatasetError, match="the mnist test images file") as info:
        load_mnist("fashion-mnist", "test", root=mnist_copy)
    assert "not the fashion-mnist test images file" in str(info.value)
    assert str(mnist_copy / MNIST_TEST[0]) in str(info.value)


def test_a_test_file_under_a_training_name_is_refused(mnist_copy: Path) -> None:
    shutil.copyfile(mnist_copy / MNIST_TEST[0], mnist_copy / "train-images-idx3-ubyte.gz")
    shutil.copyfile(mnist_copy / MNIST_TEST[1], mnist_copy / "train-labels-idx1-ubyte.gz")
    with pytest.raises(data.WrongDatasetError, match="is the mnist test images file"):
        load_mnist("mnist", "train", root=mnist_copy.parent)


def test_identify_by_gzip_or_payload_digest(mnist_copy: Path, tmp_path: Path) -> None:
    path = mnist_copy / MNIST_TEST[0]
    assert data.identify(path) == data.FileIdentity("mnist", "test", "images")
    # Re-compressed (another gzip md5, the same payload): still recognised.
    again = tmp_path / "recompressed.gz"
    again.write_bytes(gzip.compress(_payload(path), compresslevel=1, mtime=0))
    assert data.md5sum(again) != data.md5sum(path)
    assert data.identify(again) == data.FileIdentity("mnist", "test", "images")
    assert str(data.identify(again)) == "the mnist test images file"
    labels = tmp_path / "labels.gz"
    labels.write_bytes(_idx_labels(bytes(10)))
    assert data.identify(labels) is None


def test_an_unknown_file_is_refused_unless_asked(mnist_copy: Path) -> None:
    labels = mnist_copy / MNIST_TEST[1]
    payload = bytearray(gzip.decompress(labels.read_bytes()))
    payload[-1] = (payload[-1] + 1) % 10  # a valid IDX file, but not the published one
    labels.write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(CorruptFileError, match="matches no published digest") as info:
        load_mnist("mnist", "test", root=mnist_copy)
    assert "verify=False" in str(info.value) and MNIST_TEST[1] in str(info.value)
    _, y = load_mnist("mnist", "test", root=mnist_copy, verify=False)
    assert int(y[-1]) == payload[-1]


def test_the_verdict_is_cached_by_path_size_and_mtime(
    mnist_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed: list[str] = []
    md5sum = data.md5sum
    monkeypatch.setattr(data, "md5sum", lambda p: hashed.append(Path(p).name) or md5sum(p))
    load_mnist("mnist", "test", root=mnist_copy)
    assert sorted(hashed) == sorted(MNIST_TEST)
    hashed.clear()
    load_mnist("mnist", "test", root=mnist_copy)
    assert hashed == []  # a second load hashes nothing
    os.utime(mnist_copy / MNIST_TEST[1], ns=(0, 10**9))  # the file changed (its mtime says so)
    load_mnist("mnist", "test", root=mnist_copy)
    assert hashed == [MNIST_TEST[1]]


def test_an_unreadable_file_is_not_called_corrupt(
    mnist_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = mnist_copy / MNIST_TEST[1]
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads anything: make the open fail as it would
        real_open = open

        def refuse(file, *args, **kwargs):
            if Path(file) == path:
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", refuse)
    try:
        with pytest.raises(PermissionError) as info:
            load_mnist("mnist", "test", root=mnist_copy)
    finally:
        monkeypatch.undo()
        path.chmod(0o644)
    message = str(info.value)
    assert "cannot be read" in message and "permission" in message.lower()
    assert "corrupt" in message and "delete" not in message  # "not corrupt"


# ------------------------------------------------------------ corrupt files


def _truncate(raw: bytes) -> bytes:
    return raw[: len(raw) // 2]


def _flip_bytes(raw: bytes) -> bytes:
    """Damage the deflate stream early on: zlib fails (zlib.error, not an OSError)."""
    at = 200
    return raw[:at] + bytes(b ^ 0xFF for b in raw[at : at + 3]) + raw[at + 3 :]


def _bad_crc(raw: bytes) -> bytes:
    return raw[:-8] + bytes([raw[-8] ^ 1]) + raw[-7:]


CORRUPTIONS: dict[str, tuple[str, Callable[[bytes, bytes], bytes]]] = {
    # name: (which file, new bytes from (gz bytes, payload))
    "truncated-gzip-images": (MNIST_TEST[0], lambda gz, _: _truncate(gz)),
    "truncated-gzip-labels": (MNIST_TEST[1], lambda gz, _: _truncate(gz)),
    "empty-file": (MNIST_TEST[1], lambda gz, _: b""),
    "not-gzip": (MNIST_TEST[1], lambda gz, _: b"<html>404 Not Found</html>\n" * 20),
    "corrupt-deflate-stream": (MNIST_TEST[0], lambda gz, _: _flip_bytes(gz)),
    "bad-crc": (MNIST_TEST[1], lambda gz, _: _bad_crc(gz)),
    "wrong-magic": (MNIST_TEST[1], lambda gz, p: gzip.compress(b"PK\x03\x04" + p[4:])),
    "float-dtype-header": (MNIST_TEST[1], lambda gz, p: gzip.compress(p[:2] + b"\x0d" + p[3:])),
    "payload-shorter-than-header": (MNIST_TEST[1], lambda gz, p: gzip.compress(p[:-100])),
    "payload-longer-than-header": (MNIST_TEST[1], lambda gz, p: gzip.compress(p + b"\x00")),
    "header-cut": (MNIST_TEST[1], lambda gz, p: gzip.compress(p[:6])),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_file_is_named(mnist_copy: Path, case: str) -> None:
    filename, corrupt = CORRUPTIONS[case]
    path = mnist_copy / filename
    raw = path.read_bytes()
    path.write_bytes(corrupt(raw, gzip.decompress(raw)))
    with pytest.raises(CorruptFileError) as info:
        load_mnist("mnist", "test", root=mnist_copy)
    assert filename in str(info.value)
    with pytest.raises(CorruptFileError, match=filename):
        data.read_idx(path)


def test_flipped_bytes_break_the_deflate_stream(mnist_copy: Path) -> None:
    """The "corrupt-deflate-stream" cases above do reach zlib's own error."""
    for f in MNIST_TEST:
        with pytest.raises(zlib.error):
            gzip.decompress(_flip_bytes((mnist_copy / f).read_bytes()))


def test_images_and_labels_disagree(mnist_copy: Path) -> None:
    (mnist_copy / MNIST_TEST[1]).write_bytes(_idx_labels(bytes(9999)))
    with pytest.raises(CorruptFileError, match="expected"):
        load_mnist("mnist", "test", root=mnist_copy)


def test_labels_above_nine(mnist_copy: Path) -> None:
    (mnist_copy / MNIST_TEST[1]).write_bytes(_idx_labels(bytes([3] * 9999 + [10])))
    with pytest.raises(CorruptFileError, match="above 9"):
        load_mnist("mnist", "test", root=mnist_copy)


# ------------------------------------------------------------ the download


def test_download_into_cache_and_verify(mnist_copy: Path, fresh_cache: Path, serve) -> None:
    expected = load_mnist("mnist", "test", root=mnist_copy)
    with serve(mnist_copy) as (base, requests):
        images, labels = load_mnist("mnist", "test", mirrors=[base])
        assert sorted(requests) == sorted(f"/{f}" for f in MNIST_TEST)
        # The second call is served from the cache: no new request.
        again = load_mnist("mnist", "test", mirrors=[base])
        assert len(requests) == 2
    assert torch.equal(images, expected[0]) and torch.equal(labels, expected[1])
    assert torch.equal(again[0], expected[0]) and torch.equal(again[1], expected[1])
    cache = fresh_cache / "data" / "mnist"
    assert _files_under(cache) == sorted(MNIST_TEST)  # no .part leftovers
    for f in MNIST_TEST:
        assert data.md5sum(cache / f) == data.md5sum(mnist_copy / f)


@contextmanager
def _garbled_server() -> Iterator[str]:
    """A server on 127.0.0.1 that answers every request with a non-HTTP line."""

    class Garbled(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(5)
            self.request.recv(65536)
            self.request.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Garbled)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


def test_download_tries_next_mirror(mnist_copy: Path, fresh_cache: Path, serve) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}/"  # connection refused
    with serve(mnist_copy) as (base, requests), _garbled_server() as garbled:
        images_path, labels_path = locate("mnist", "test", mirrors=[dead, garbled, base])
        assert len(requests) == 2
    assert images_path == fresh_cache / "data" / "mnist" / MNIST_TEST[0]
    assert labels_path.is_file()


def test_checksum_mismatch_leaves_nothing(
    mnist_copy: Path, fresh_cache: Path, serve, tmp_path: Path
) -> None:
    labels = mnist_copy / MNIST_TEST[1]
    payload = bytearray(gzip.decompress(labels.read_bytes()))
    payload[-1] = (payload[-1] + 1) % 10  # a valid IDX file, but not *the* file
    labels.write_bytes(gzip.compress(bytes(payload)))
    cache = fresh_cache / "data" / "mnist"
    with serve(mnist_copy) as (base, _):
        with pytest.raises(DatasetNotFoundError, match="md5") as info:
            locate("mnist", "test", mirrors=[base])
        assert base in str(info.value)
        assert not (cache / MNIST_TEST[1]).exists()
        # download() itself raises and leaves no file under the final name.
        dest = tmp_path / "direct" / MNIST_TEST[1]
        spec = data.DATASETS["mnist"].files["test"][1]
        with pytest.raises(CorruptFileError, match="md5"):
            data.download(base + MNIST_TEST[1], dest, spec, timeout=10)
    assert not dest.exists()
    assert _files_under(dest.parent) == []
    # The good images file was kept; nothing half-written anywhere.
    assert _files_under(cache) == [MNIST_TEST[0]]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[:1000], id="truncated"),
        pytest.param(lambda raw: b"", id="empty"),
        pytest.param(_flip_bytes, id="flipped-bytes"),
    ],
)
def test_partial_cached_file_is_fetched_again(
    mnist_copy: Path, fresh_cache: Path, serve, damage: Callable[[bytes], bytes]
) -> None:
    cache = fresh_cache / "data" / "mnist"
    cache.mkdir(parents=True)
    for f in MNIST_TEST:
        shutil.copyfile(mnist_copy / f, cache / f)
    images = cache / MNIST_TEST[0]
    images.write_bytes(damage(images.read_bytes()))
    with serve(mnist_copy) as (base, requests):
        x, _ = load_mnist("mnist", "test", mirrors=[base])
        assert requests == [f"/{MNIST_TEST[0]}"]  # only the damaged file
    assert x.shape == (10000, 28, 28)
    assert data.md5sum(images) == data.md5sum(mnist_copy / MNIST_TEST[0])
    assert _files_under(cache) == sorted(MNIST_TEST)


@pytest.mark.parametrize("with_data_dir", [True, False])
def test_offline_and_nothing_local(
    monkeypatch: pytest.MonkeyPatch,
    fresh_cache: Path,
    tmp_path: Path,
    serve,
    mnist_copy: Path,
    with_data_dir: bool,
) -> None:
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    empty = tmp_path / "empty"
    empty.mkdir()
    if with_data_dir:
        monkeypatch.setenv("COURSE_DATA_DIR", str(empty))
    with serve(mnist_copy) as (base, requests):
        with pytest.raises(DatasetNotFoundError) as info:
            load_mnist("mnist", "test", mirrors=[base])
        assert requests == []  # offline means no request at all
    message = str(info.value)
    assert str(fresh_cache / "data" / "mnist" / MNIST_TEST[0]) in message
    if with_data_dir:
        assert str(empty / "mnist" / MNIST_TEST[0]) in message
    assert "COURSE_DATA_DIR" in message and "COURSE_OFFLINE" in message
    assert isinstance(info.value, FileNotFoundError)
    assert not (fresh_cache / "data" / "mnist").exists() or not any(
        (fresh_cache / "data" / "mnist").iterdir()
    )


def test_offline_uses_a_valid_cache(
    monkeypatch: pytest.MonkeyPatch, fresh_cache: Path, mnist_copy: Path
) -> None:
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    cache = fresh_cache / "data" / "mnist"
    shutil.copytree(mnist_copy, cache)
    assert locate("mnist", "test") == (cache / MNIST_TEST[0], cache / MNIST_TEST[1])


# -------------------------------------------------------------------- moons


def test_moons_deterministic_and_disjoint() -> None:
    train, test = data.moons(500, 300, seed=3)
    train2, test2 = data.moons(500, 300, seed=3)
    assert train.shape == (500, 2) and test.shape == (300, 2)
    assert train.dtype == torch.float32 and test.dtype == torch.float32
    assert torch.equal(train, train2) and torch.equal(test, test2)
    assert not torch.equal(data.moons(500, 300, seed=4)[0], train)
    # No held-out point is also a training point.
    assert float(torch.cdist(train.double(), test.double()).min()) > 0
    # Both moons are in both splits (the split is shuffled, not by moon).
    for split in (train, test):
        assert (split[:, 1] > 0.5).any() and (split[:, 1] < -0.2).any()


def test_moons_bad_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        data.moons(0, 10)


def test_stale_partial_downloads_are_removed(tmp_path) -> None:
    import os
    import time

    from course_utils.core.data import remove_stale_parts

    dest = tmp_path / "train-images-idx3-ubyte.gz"
    old = tmp_path / f".{dest.name}.abc123.part"
    fresh = tmp_path / f".{dest.name}.def456.part"
    other = tmp_path / ".t10k-images-idx3-ubyte.gz.zzz.part"
    for f in (old, fresh, other):
        f.write_bytes(b"partial")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    os.utime(other, (hours_ago, hours_ago))
    assert remove_stale_parts(dest) == 1
    assert not old.exists() and fresh.exists() and other.exists()  # only this file's, only stale
