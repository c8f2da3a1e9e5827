"""Model checkpoints: a registry of official downloads, a user cache, atomic writes, hashes.

Nothing here downloads at import or in tests. :func:`fetch` downloads a registered file into
``cache_dir()`` when the network is there; offline it raises :class:`CheckpointError` that says
which file to fetch and where to put it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisteredFile:
    """A downloadable model file. ``sha256`` is pinned where known; a file without a pinned hash
    has its hash recorded beside it on first download and verified on every later use."""

    name: str
    url: str
    filename: str
    sha256: str | None = None


_SAM2_BASE = "https://dl.fbaipublicfiles.com/segment_anything_2"
SAM2_CHECKPOINTS: dict[str, RegisteredFile] = {}
for _ver, _date in (("sam2", "072824"), ("sam2.1", "092824")):
    for _size in ("tiny", "small", "base_plus", "large"):
        _name = f"{_ver}_hiera_{_size}"
        SAM2_CHECKPOINTS[_name] = RegisteredFile(_name, f"{_SAM2_BASE}/{_date}/{_name}.pt", f"{_name}.pt")

#: model name -> sam2 config name
SAM2_CONFIG_OF = {
    f"{v}_hiera_{s}": f"{v}_hiera_{c}"
    for v in ("sam2", "sam2.1")
    for s, c in (("tiny", "t"), ("small", "s"), ("base_plus", "b+"), ("large", "l"))
}


def cache_dir() -> Path:
    """Where downloaded weights live: ``$NAPARI_SASVI_CACHE`` or ``~/.cache/napari-sasvi``."""
    env = os.environ.get("NAPARI_SASVI_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "napari-sasvi"


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _verify(entry: RegisteredFile, path: Path) -> str:
    digest = sha256_of(path)
    expected = entry.sha256
    sidecar = path.with_name(path.name + ".sha256")
    if expected is None and sidecar.exists():
        expected = sidecar.read_text().split()[0]
    if expected is not None and digest != expected:
        raise CheckpointError(
            f"{path} does not match the expected checksum of {entry.name} (sha256 {digest[:12]}... != "
            f"{expected[:12]}...). Delete it and download it again from {entry.url}."
        )
    if expected is None:
        sidecar.write_text(f"{digest}  {path.name}\n")
    return digest


def fetch(entry: RegisteredFile, timeout: float = 30.0) -> Path:
    """The local path of ``entry``, downloading it into :func:`cache_dir` if needed.

    The download goes to a temporary file that is renamed only once complete and verified, so an
    interrupted download never leaves a file that looks finished.
    """
    target = cache_dir() / entry.filename
    if target.is_file():
        _verify(entry, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    log.info("downloading %s from %s", entry.name, entry.url)
    try:
        with urllib.request.urlopen(entry.url, timeout=timeout) as resp, open(tmp, "wb") as out:
            while block := resp.read(1 << 20):
                out.write(block)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        tmp.unlink(missing_ok=True)
        raise CheckpointError(
            f"Cannot download {entry.name} ({e}). Offline? Download {entry.url} on a machine with "
            f"network access and put it at {target} (or pass the file's path instead of the name)."
        ) from e
    try:
        _verify(entry, tmp)
    except CheckpointError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    sidecar = tmp.with_name(tmp.name + ".sha256")
    if sidecar.exists():
        os.replace(sidecar, target.with_name(target.name + ".sha256"))
    return target


# -- published SASVi overseers -------------------------------------------------------------------
SASVI_HUB_REPO = "SsharvienKumar/SASVi"


@dataclass(frozen=True)
class PublishedOverseer:
    """A published SASVi overseer checkpoint: ``checkpoints/<dataset>/<arch>/best_val_*.pth`` in the
    authors' Hugging Face repository. Its file name and sha256 are read from the Hub's listing when
    it is downloaded (the Hub stores the sha256 of every large file); ``sha256`` pins it here."""

    dataset: str
    arch: str
    pattern: str = "best_val_*.pth"
    repo: str = SASVI_HUB_REPO
    revision: str = "main"
    sha256: str | None = None

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.arch}"

    @property
    def folder(self) -> str:
        return f"checkpoints/{self.dataset}/{self.arch}"

    def page(self) -> str:
        return f"https://huggingface.co/{self.repo}/tree/{self.revision}/{self.folder}"


SASVI_OVERSEERS: dict[str, PublishedOverseer] = {
    f"{d}/{a}": PublishedOverseer(d, a)
    for d in ("cadis", "cholecseg8k", "cataract1k")
    for a in ("maskrcnn", "detr", "mask2former")
}


def hub_endpoint() -> str:
    """The Hugging Face Hub address (``$HF_ENDPOINT`` for a mirror)."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def _hub_listing(entry: PublishedOverseer, timeout: float) -> list[dict]:
    import json

    url = f"{hub_endpoint()}/api/models/{entry.repo}/tree/{entry.revision}/{entry.folder}"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


def fetch_published_overseer(entry: PublishedOverseer, timeout: float = 30.0) -> Path:
    """The local file of a published overseer checkpoint, downloaded into the cache when missing.

    Offline, a cached copy is used (its recorded sha256 checked); with none, the error says where
    to download the file by hand.
    """
    import fnmatch

    folder = cache_dir() / "sasvi" / entry.dataset / entry.arch
    cached = sorted(folder.glob(entry.pattern)) if folder.is_dir() else []
    cached = [p for p in cached if not p.name.endswith(".partial")]
    if cached:
        local = cached[-1]
        _verify(RegisteredFile(entry.name, entry.page(), str(local.relative_to(cache_dir())), entry.sha256), local)
        return local
    try:
        listing = _hub_listing(entry, timeout)
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as e:
        raise CheckpointError(
            f"Cannot reach the Hugging Face Hub to download the published {entry.name} overseer ({e}). Offline? "
            f"Download best_val_*.pth from {entry.page()} on a machine with network access and pass the file "
            f"with overseer.checkpoint FILE, or put it in {folder}."
        ) from e
    files = sorted(
        (f for f in listing if f.get("type") == "file" and fnmatch.fnmatch(Path(f["path"]).name, entry.pattern)),
        key=lambda f: f["path"],
    )
    if not files:
        raise CheckpointError(f"No {entry.pattern} file in {entry.page()}: the repository changed; pass a file.")
    info = files[-1]
    sha = entry.sha256 or (info.get("lfs") or {}).get("oid")
    fname = Path(info["path"]).name
    url = f"{hub_endpoint()}/{entry.repo}/resolve/{entry.revision}/{info['path']}"
    local = fetch(RegisteredFile(entry.name, url, f"sasvi/{entry.dataset}/{entry.arch}/{fname}", sha), timeout)
    sidecar = local.with_name(local.name + ".sha256")
    if sha and not sidecar.exists():  # the Hub's hash, checked on every later (offline) use
        sidecar.write_text(f"{sha}  {local.name}\n")
    return local


def resolve_overseer_checkpoint(checkpoint: str | os.PathLike, arch: str, dataset: str) -> Path:
    """A checkpoint file, or a published checkpoint's name (``cadis/maskrcnn``; ``published`` for
    the one of ``arch`` and ``dataset``) resolved to its cached or downloaded file."""
    path = Path(checkpoint)
    if path.is_file():
        return path
    name = str(checkpoint)
    if name == "published":
        name = f"{dataset}/{arch}"
    if name in SASVI_OVERSEERS:
        entry = SASVI_OVERSEERS[name]
        if entry.arch != arch:
            raise CheckpointError(f"{name} is a {entry.arch} checkpoint, not {arch}: set overseer.kind {entry.arch}.")
        return fetch_published_overseer(entry)
    raise CheckpointError(
        f"Overseer checkpoint {path} does not exist. Give a .pth file, or a published checkpoint's name: "
        f"{', '.join(SASVI_OVERSEERS)} (or 'published' for the one of the chosen overseer and dataset)."
    )
