"""Model checkpoints: the official SAM2 downloads and the published SASVi overseers.

Nothing here downloads at import or in tests.

* **SAM2 / SAM2.1** checkpoints come from ``dl.fbaipublicfiles.com`` (not the Hugging Face Hub):
  :func:`fetch` downloads a registered file into :func:`cache_dir` through
  :func:`~.fsutil.atomic_path` (an interrupted download never leaves a file under the final name)
  and checks its sha256. Offline it raises a :class:`CheckpointError` that says which file to
  fetch and where to put it.
* **Published SASVi overseers** live in the authors' Hub repository and are downloaded with
  ``huggingface_hub`` into its cache (``$HF_HUB_CACHE``; ``$HF_HUB_OFFLINE=1`` and an unreachable
  Hub use the cached copy; ``$HF_ENDPOINT`` selects a mirror). Each file is checked against the
  sha256 the Hub stores for it (the name of its blob in the cache) or a pinned one.

Pinned hashes. The sha256 of the official SAM2 and SAM2.1 checkpoints could not be established
where this was written: no network, and a search of public code (file names beside a 64-hex
digest) found none. Every ``SAM2_CHECKPOINTS`` entry therefore keeps ``sha256=None``: its first
download logs a "not pinned" warning and its hash is recorded beside the file and checked on every
later use. Likewise no commit hash of the SASVi repository could be established, so
:data:`SASVI_HUB_REVISION` is ``"main"``; :class:`PublishedOverseer` takes a ``revision`` (a commit
hash pins it) and a ``sha256``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
from huggingface_hub import constants as hf_constants

from .errors import CheckpointError
from .fsutil import atomic_path, atomic_write_text, is_disk_full

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"[0-9a-f]{64}")


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
        # sha256=None: not established (see the module docstring); pin it here once known
        SAM2_CHECKPOINTS[_name] = RegisteredFile(_name, f"{_SAM2_BASE}/{_date}/{_name}.pt", f"{_name}.pt")

#: model name -> sam2 config name
SAM2_CONFIG_OF = {
    f"{v}_hiera_{s}": f"{v}_hiera_{c}"
    for v in ("sam2", "sam2.1")
    for s, c in (("tiny", "t"), ("small", "s"), ("base_plus", "b+"), ("large", "l"))
}


def cache_dir() -> Path:
    """Where downloaded SAM2 weights live: ``$NAPARI_SASVI_CACHE`` or ``~/.cache/napari-sasvi``."""
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


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _verify(entry: RegisteredFile, path: Path, *, recorded: Path | None = None) -> str:
    """The sha256 of ``path``, checked against the pinned hash or the one recorded beside
    ``recorded`` (default: ``path``) on first download."""
    digest = sha256_of(path)
    expected = entry.sha256
    sidecar = _sidecar(recorded or path)
    if expected is None and sidecar.exists():
        expected = sidecar.read_text().split()[0]
    if expected is not None and digest != expected:
        raise CheckpointError(
            f"{recorded or path} does not match the expected checksum of {entry.name} (sha256 {digest[:12]}... != "
            f"{expected[:12]}...). Delete it and download it again from {entry.url}."
        )
    return digest


def fetch(entry: RegisteredFile, timeout: float = 30.0) -> Path:
    """The local path of ``entry``, downloading it into :func:`cache_dir` if needed.

    The download is written through :func:`~.fsutil.atomic_path` and checked before it takes the
    final name. An entry without a pinned sha256 logs a "not pinned" warning; the hash of its first
    download is recorded beside it (``.sha256``) and checked from then on.
    """
    target = cache_dir() / entry.filename
    if target.is_file():
        digest = _verify(entry, target)
        if entry.sha256 is None and not _sidecar(target).exists():  # a file put there by hand
            atomic_write_text(_sidecar(target), f"{digest}  {target.name}\n")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if entry.sha256 is None:
        log.warning("%s is not pinned: napari-sasvi knows no sha256 for it; this download's is recorded", entry.name)
    log.info("downloading %s from %s", entry.name, entry.url)
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(entry.url, timeout=timeout) as resp, open(tmp, "wb") as out:
                shutil.copyfileobj(resp, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            if is_disk_full(e):
                raise CheckpointError(
                    f"No space left on {target.parent} for {entry.name}: free some and run again."
                ) from e
            raise CheckpointError(
                f"Cannot download {entry.name} ({e}). Offline? Download {entry.url} on a machine with "
                f"network access and put it at {target} (or pass the file's path instead of the name)."
            ) from e
        digest = _verify(entry, tmp, recorded=target)
    if entry.sha256 is None:
        atomic_write_text(_sidecar(target), f"{digest}  {target.name}\n")
    return target


# -- published SASVi overseers -------------------------------------------------------------------
SASVI_HUB_REPO = "SsharvienKumar/SASVi"
#: the repository's revision; a branch, not pinned: no commit hash could be established (see the
#: module docstring). A commit hash here pins every published overseer.
SASVI_HUB_REVISION = "main"


@dataclass(frozen=True)
class PublishedOverseer:
    """A published SASVi overseer checkpoint: ``checkpoints/<dataset>/<arch>/best_val_*.pth`` in the
    authors' Hugging Face repository at ``revision``. The file is checked against the sha256 the
    Hub stores for it, or ``sha256`` where pinned here."""

    dataset: str
    arch: str
    pattern: str = "best_val_*.pth"
    repo: str = SASVI_HUB_REPO
    revision: str = SASVI_HUB_REVISION
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


def _verify_hub_file(entry: PublishedOverseer, path: Path) -> None:
    """Check a file of huggingface_hub's cache against the pinned sha256, else the Hub's: the
    cache names each large file's blob by the sha256 the Hub stores for it. A file that does not
    match is removed from the cache (a later run downloads it again) and is an error."""
    blob = path.resolve()
    expected = entry.sha256 or (blob.name if _SHA256.fullmatch(blob.name) else None)
    if expected is None:  # a copied cache (no links): nothing to check against
        log.warning("%s of the published %s overseer is not pinned and its Hub hash is unknown", path, entry.name)
        return
    digest = sha256_of(blob)
    if digest != expected:
        blob.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        raise CheckpointError(
            f"{path.name} of the published {entry.name} overseer does not match its sha256 ({digest[:12]}... != "
            f"{expected[:12]}...); it was removed from huggingface_hub's cache. Run again to download it again, "
            f"or download it from {entry.page()} and pass the file with overseer.checkpoint FILE."
        )


def fetch_published_overseer(entry: PublishedOverseer) -> Path:
    """The local file of a published overseer checkpoint, from huggingface_hub's cache, downloaded
    into it when missing. Offline (``$HF_HUB_OFFLINE`` or no network) a cached copy is used; with
    none, the error says where to download the file by hand."""
    try:
        snapshot = huggingface_hub.snapshot_download(
            entry.repo,
            revision=entry.revision,
            allow_patterns=[f"{entry.folder}/{entry.pattern}"],
            local_files_only=hf_constants.HF_HUB_OFFLINE,
        )
    except (OSError, ValueError) as e:  # huggingface_hub's errors: LocalEntryNotFoundError, HfHubHTTPError, ...
        if is_disk_full(e):
            raise CheckpointError(
                f"No space left for the published {entry.name} overseer ({hf_constants.HF_HUB_CACHE}): "
                "free some and run again."
            ) from e
        raise CheckpointError(
            f"Cannot get the published {entry.name} overseer from the Hugging Face Hub "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Offline? Download best_val_*.pth "
            f"from {entry.page()} on a machine with network access and pass the file with overseer.checkpoint FILE."
        ) from e
    folder = Path(snapshot) / entry.folder
    files = sorted(p for p in folder.glob("*") if fnmatch.fnmatch(p.name, entry.pattern)) if folder.is_dir() else []
    if not files:
        raise CheckpointError(f"No {entry.pattern} file in {entry.page()}: the repository changed; pass a file.")
    _verify_hub_file(entry, files[-1])
    return files[-1]


def resolve_overseer_checkpoint(checkpoint: str | os.PathLike, arch: str, dataset: str) -> Path:
    """A checkpoint file, or a published checkpoint's name (``cadis/maskrcnn``; ``published`` for
    the one of ``arch`` and ``dataset``) resolved to its cached or downloaded file."""
    path = Path(checkpoint)
    if path.is_file():
        return path
    name = str(checkpoint).lower()  # dataset names in any case, as everywhere (CholecSeg8k/maskrcnn)
    if name == "published":
        name = f"{dataset}/{arch}".lower()
    if name in SASVI_OVERSEERS:
        entry = SASVI_OVERSEERS[name]
        if entry.arch != arch:
            raise CheckpointError(f"{name} is a {entry.arch} checkpoint, not {arch}: set overseer.kind {entry.arch}.")
        return fetch_published_overseer(entry)
    raise CheckpointError(
        f"Overseer checkpoint {path} does not exist. Give a .pth file, or a published checkpoint's name: "
        f"{', '.join(SASVI_OVERSEERS)} (or 'published' for the one of the chosen overseer and dataset)."
    )
