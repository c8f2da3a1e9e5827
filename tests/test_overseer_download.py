"""Model downloads without the network. Published overseers by name go through huggingface_hub:
its cache (laid out here as it lays it out), its offline mode and its fallback to the cache when
the Hub cannot be reached, the Hub's sha256 (the name of each blob) checked, a wrong file named,
removed and said what to do about. SAM2 checkpoints come from a plain download written atomically,
checked against the pinned sha256 or, unpinned, a recorded one with a "not pinned" warning. The
only fakes are at the network: huggingface_hub's snapshot_download and urllib's urlopen."""

from __future__ import annotations

import hashlib
import io
import logging
import os

import huggingface_hub
import pytest
from huggingface_hub import constants as hf_constants

from napari_sasvi.core import weights
from napari_sasvi.core.errors import CheckpointError
from napari_sasvi.core.weights import (
    SAM2_CHECKPOINTS,
    SASVI_OVERSEERS,
    PublishedOverseer,
    RegisteredFile,
    fetch,
    fetch_published_overseer,
    resolve_overseer_checkpoint,
)

PAYLOAD = b"not really weights, but bytes with a known hash" * 1000
SHA = hashlib.sha256(PAYLOAD).hexdigest()
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REAL_SNAPSHOT = huggingface_hub.snapshot_download


@pytest.fixture(autouse=True)
def hub_cache(tmp_path, monkeypatch):
    """huggingface_hub's cache in a temporary folder, online, with a Hub that cannot be reached."""
    cache = tmp_path / "hub"
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("NAPARI_SASVI_CACHE", str(tmp_path / "cache"))
    return cache


def cache_file(cache, path: str, content: bytes, *, blob: str | None = None, repo="SsharvienKumar/SASVi"):
    """Put ``path`` of the repository's ``main`` (commit COMMIT) into the cache as huggingface_hub
    does: the content in ``blobs/<sha256>`` (``blob``: the Hub's hash, when the content is not what
    it should be), linked from ``snapshots/<commit>/<path>``, and ``refs/main`` naming the commit."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(COMMIT)
    blob_path = root / "blobs" / (blob or hashlib.sha256(content).hexdigest())
    blob_path.write_bytes(content)
    link = root / "snapshots" / COMMIT / path
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob_path, link.parent))
    return link


class FakeHub:
    """snapshot_download reaching a Hub that serves best_val_epoch42.pth (and notes.txt) in every
    checkpoint folder: online it caches the files the patterns ask for; offline it is the real one."""

    def __init__(self, cache, content=PAYLOAD):
        self.cache, self.content, self.calls = cache, content, []

    def __call__(self, repo_id, *, revision, allow_patterns, local_files_only=False, **kw):
        if local_files_only:
            return REAL_SNAPSHOT(repo_id, revision=revision, allow_patterns=allow_patterns, local_files_only=True)
        self.calls.append((repo_id, revision, allow_patterns))
        (pattern,) = allow_patterns
        folder = pattern.rsplit("/", 1)[0]
        link = cache_file(self.cache, f"{folder}/best_val_epoch42.pth", self.content, blob=SHA)
        return str(link.parents[len(folder.split("/"))])


def test_download_by_name_into_the_hub_cache_then_offline_and_unreachable_from_it(hub_cache, monkeypatch):
    hub = FakeHub(hub_cache)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    path = resolve_overseer_checkpoint("cadis/maskrcnn", "maskrcnn", "cadis")
    assert hub.calls == [("SsharvienKumar/SASVi", "main", ["checkpoints/cadis/maskrcnn/best_val_*.pth"])]
    assert path.name == "best_val_epoch42.pth" and path.read_bytes() == PAYLOAD
    assert path.is_relative_to(hub_cache) and path.resolve().name == SHA
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)  # HF_HUB_OFFLINE=1: the cache, no Hub
    assert resolve_overseer_checkpoint("published", "maskrcnn", "cadis") == path
    monkeypatch.setattr(huggingface_hub, "snapshot_download", REAL_SNAPSHOT)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # online, but the Hub cannot be reached
    assert resolve_overseer_checkpoint("cadis/maskrcnn", "maskrcnn", "cadis") == path
    assert len(hub.calls) == 1


def test_a_file_that_is_not_what_the_hub_says_is_named_removed_and_said_what_to_do(hub_cache, monkeypatch):
    hub = FakeHub(hub_cache, content=PAYLOAD[:-1] + b"!")  # a transfer gone wrong, under the Hub's hash
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    with pytest.raises(CheckpointError) as e:
        resolve_overseer_checkpoint("cholecseg8k/detr", "detr", "cholecseg8k")
    msg = str(e.value)
    assert msg.startswith("best_val_epoch42.pth of the published cholecseg8k/detr overseer does not match its sha256")
    assert "Run again to download it again" in msg and "overseer.checkpoint FILE" in msg
    assert not list(hub_cache.rglob("best_val_epoch42.pth")) and not list(hub_cache.rglob(SHA))
    hub.content = PAYLOAD  # the next run downloads it again
    assert resolve_overseer_checkpoint("cholecseg8k/detr", "detr", "cholecseg8k").read_bytes() == PAYLOAD


def test_a_pinned_hash_is_checked_over_the_hubs(hub_cache, monkeypatch):
    cache_file(hub_cache, "checkpoints/cadis/detr/best_val_epoch42.pth", PAYLOAD)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    assert fetch_published_overseer(PublishedOverseer("cadis", "detr", sha256=SHA)).read_bytes() == PAYLOAD
    with pytest.raises(CheckpointError, match="best_val_epoch42.pth of the published cadis/detr overseer does not"):
        fetch_published_overseer(PublishedOverseer("cadis", "detr", sha256="0" * 64))


@pytest.mark.parametrize("offline", [True, False])
def test_nothing_cached_and_no_hub_says_where_to_get_it(monkeypatch, offline):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", offline)
    with pytest.raises(CheckpointError) as e:
        resolve_overseer_checkpoint("cataract1k/mask2former", "mask2former", "cataract1k")
    msg = str(e.value)
    assert "Offline? Download best_val_*.pth from " in msg and "\n" not in msg
    assert "https://huggingface.co/SsharvienKumar/SASVi/tree/main/checkpoints/cataract1k/mask2former" in msg


def test_names_and_mismatches():
    assert len(SASVI_OVERSEERS) == 9
    with pytest.raises(CheckpointError, match="is a detr checkpoint, not maskrcnn"):
        resolve_overseer_checkpoint("cadis/detr", "maskrcnn", "cadis")
    with pytest.raises(CheckpointError, match="does not exist.*cadis/maskrcnn"):
        resolve_overseer_checkpoint("nowhere/best.pth", "maskrcnn", "cadis")
    with pytest.raises(CheckpointError, match="is a detr checkpoint"):  # names in any case, as datasets
        resolve_overseer_checkpoint("CaDIS/DETR", "maskrcnn", "CaDIS")


# -- SAM2: a plain download, written atomically ---------------------------------------------------------
@pytest.fixture
def server(monkeypatch):
    """urllib's urlopen answering every URL with ``server.body`` (the network boundary)."""

    class Server:
        body = PAYLOAD
        urls: list[str] = []

    def urlopen(url, timeout):
        Server.urls.append(url)
        return io.BytesIO(Server.body)

    monkeypatch.setattr(weights.urllib.request, "urlopen", urlopen)
    return Server


def _left(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_sam2_registry():
    assert len(SAM2_CHECKPOINTS) == 8
    for name, entry in SAM2_CHECKPOINTS.items():
        assert entry.url.startswith("https://dl.fbaipublicfiles.com/segment_anything_2/")
        assert entry.url.endswith(f"/{name}.pt") and entry.filename == f"{name}.pt"
        assert entry.sha256 is None or len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0


def test_a_pinned_download_is_checked_before_it_takes_its_name(tmp_path, server):
    entry = RegisteredFile(
        "sam2.1_hiera_tiny", "https://example.invalid/sam2.1_hiera_tiny.pt", "sam2.1_hiera_tiny.pt", SHA
    )
    path = fetch(entry)
    assert path == tmp_path / "cache" / "sam2.1_hiera_tiny.pt" and path.read_bytes() == PAYLOAD
    assert _left(path.parent) == ["sam2.1_hiera_tiny.pt"]  # pinned: nothing recorded beside it
    assert fetch(entry) == path and len(server.urls) == 1  # from the cache now
    path.unlink()
    server.body = PAYLOAD[:-1] + b"!"
    with pytest.raises(CheckpointError) as e:
        fetch(entry)
    assert str(e.value).startswith(f"{path} does not match the expected checksum of sam2.1_hiera_tiny")
    assert "Delete it and download it again from https://example.invalid/sam2.1_hiera_tiny.pt" in str(e.value)
    assert _left(path.parent) == []  # the download never took the final name


def test_an_unpinned_download_warns_and_is_checked_from_then_on(tmp_path, server, caplog):
    entry = RegisteredFile("sam2_hiera_small", "https://example.invalid/sam2_hiera_small.pt", "sam2_hiera_small.pt")
    with caplog.at_level(logging.WARNING, logger="napari_sasvi.core.weights"):
        path = fetch(entry)
    assert "sam2_hiera_small is not pinned" in caplog.text
    assert _left(path.parent) == ["sam2_hiera_small.pt", "sam2_hiera_small.pt.sha256"]
    assert (path.parent / "sam2_hiera_small.pt.sha256").read_text().split()[0] == SHA
    path.write_bytes(b"tampered")
    with pytest.raises(CheckpointError, match="does not match the expected checksum"):
        fetch(entry)
