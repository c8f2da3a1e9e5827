"""Published overseer checkpoints by name: download from a (local stand-in) Hub with the Hub's
sha256, the user cache, atomic writes, offline use of the cache, and the offline error."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading

import pytest

from napari_sasvi.core.errors import CheckpointError
from napari_sasvi.core.weights import SASVI_OVERSEERS, resolve_overseer_checkpoint

PAYLOAD = b"not really weights, but bytes with a known hash" * 1000


class _Hub(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    listing_sha = ""
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        self.hits.append(self.path)
        prefix = "/api/models/SsharvienKumar/SASVi/tree/main/"
        if self.path.startswith(prefix):
            folder = self.path[len(prefix) :]
            body = json.dumps(
                [
                    {"type": "file", "path": f"{folder}/notes.txt", "size": 3},
                    {
                        "type": "file",
                        "path": f"{folder}/best_val_epoch42.pth",
                        "size": len(PAYLOAD),
                        "lfs": {"oid": self.listing_sha, "size": len(PAYLOAD)},
                    },
                ]
            ).encode()
        elif self.path.startswith("/SsharvienKumar/SASVi/resolve/main/"):
            body = PAYLOAD
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(monkeypatch, tmp_path):
    _Hub.hits = []
    _Hub.listing_sha = hashlib.sha256(PAYLOAD).hexdigest()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("NAPARI_SASVI_CACHE", str(tmp_path / "cache"))
    yield _Hub
    server.shutdown()


def test_download_by_name_then_offline_from_the_cache(hub, tmp_path, monkeypatch):
    path = resolve_overseer_checkpoint("cadis/maskrcnn", "maskrcnn", "cadis")
    assert path == tmp_path / "cache" / "sasvi" / "cadis" / "maskrcnn" / "best_val_epoch42.pth"
    assert path.read_bytes() == PAYLOAD
    assert (path.parent / "best_val_epoch42.pth.sha256").read_text().split()[0] == hub.listing_sha
    assert not list(path.parent.glob("*.partial"))
    n = len(hub.hits)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # offline now
    assert resolve_overseer_checkpoint("published", "maskrcnn", "cadis") == path
    assert len(hub.hits) == n
    path.write_bytes(PAYLOAD[:-1] + b"!")  # damaged in the cache: detected
    with pytest.raises(CheckpointError, match="does not match the expected checksum"):
        resolve_overseer_checkpoint("cadis/maskrcnn", "maskrcnn", "cadis")


def test_wrong_checksum_leaves_nothing(hub, tmp_path):
    hub.listing_sha = "0" * 64
    with pytest.raises(CheckpointError, match="checksum"):
        resolve_overseer_checkpoint("cholecseg8k/detr", "detr", "cholecseg8k")
    folder = tmp_path / "cache" / "sasvi" / "cholecseg8k" / "detr"
    assert not [p for p in folder.iterdir() if p.suffix in (".pth", ".partial")]


def test_offline_error_says_where_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("NAPARI_SASVI_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match=r"Offline\?.*huggingface.co/SsharvienKumar/SASVi/tree/main/checkpoints/"):
        resolve_overseer_checkpoint("cataract1k/mask2former", "mask2former", "cataract1k")


def test_names_and_mismatches():
    assert len(SASVI_OVERSEERS) == 9
    with pytest.raises(CheckpointError, match="is a detr checkpoint, not maskrcnn"):
        resolve_overseer_checkpoint("cadis/detr", "maskrcnn", "cadis")
    with pytest.raises(CheckpointError, match="does not exist.*cadis/maskrcnn"):
        resolve_overseer_checkpoint("nowhere/best.pth", "maskrcnn", "cadis")
