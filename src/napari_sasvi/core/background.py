"""Loading torch and running long work in a background thread without stalling the others.

A worker thread that imports torch and builds models holds Python's GIL for long stretches, and a
GUI thread in the same process (napari's) cannot run meanwhile. Measured with napari's event loop
under Xvfb (``benchmarks/bench_gui.py --blame-ms``), the stalls came from two places:

* **loading torch's shared libraries**: ``import torch`` dlopens ``torch/_C*.so`` and with it
  libtorch (hundreds of MB, thousands of static initialisers), ~0.3-0.4 s with the GIL held
  (Python holds it across an extension module's dlopen, and so does ``ctypes.CDLL``).
  :func:`preload_torch` dlopens the same files first through a plain ctypes *function call*,
  which releases the GIL for its duration; the later ``import torch`` finds them loaded.
* **full garbage collections**: napari, torch and a model make millions of objects, and each
  generation-2 collection walks all of them (0.2-0.45 s here), in whichever thread triggered it.
  :class:`frozen_heap` pauses collection while the worker imports and builds (a few seconds,
  which make mostly long-lived objects), then moves the objects that exist (and will live as long
  as the run) to the collector's permanent generation while the run goes, and gives them back
  afterwards.

Both are best-effort: on a platform or install where they do not apply they do nothing.

What must hold the GIL still does: the Python-visible part of torch's import (``PyInit`` of
``torch._C``, a few thousand bindings, 0.3-0.7 s on 2 busy cores). :func:`warm_imports` lets a
GUI do that in the background as soon as a form names a model, before Run.
"""

from __future__ import annotations

import ctypes
import gc
import glob
import importlib.util
import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

_preloaded: bool | None = None
_lock = threading.Lock()


def _dlopen_releasing_the_gil(path: str, flags: int) -> bool:
    libc = ctypes.CDLL(None)  # the process's own symbols (libc's dlopen)
    dlopen = libc.dlopen
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return bool(dlopen(os.fsencode(path), flags))  # a CDLL function call runs without the GIL


def preload_torch() -> bool:
    """Load torch's native libraries without holding the GIL, before ``import torch``.

    Returns True when they were loaded (or torch is already imported), False when this does not
    apply (not Linux, torch not installed or laid out otherwise); ``import torch`` then loads them
    itself, as always. Never raises.
    """
    global _preloaded
    with _lock:
        if "torch" in sys.modules:
            return True
        if _preloaded is not None:
            return _preloaded
        _preloaded = False
        if not sys.platform.startswith("linux"):
            return False
        try:
            spec = importlib.util.find_spec("torch")  # finds the package without running it
            if spec is None or not spec.origin:
                return False
            root = os.path.dirname(spec.origin)
            deps = os.path.join(root, "lib", "libtorch_global_deps.so")
            ext = sorted(glob.glob(os.path.join(root, "_C.*.so")))
            if not ext:
                return False
            # torch loads its global deps with RTLD_GLOBAL, then _C as any extension module
            if os.path.exists(deps) and not _dlopen_releasing_the_gil(deps, os.RTLD_NOW | os.RTLD_GLOBAL):
                return False
            _preloaded = _dlopen_releasing_the_gil(ext[0], sys.getdlopenflags())
        except (OSError, AttributeError, ValueError, ImportError) as e:  # pragma: no cover - platform specific
            log.debug("torch preload skipped: %s", e)
            _preloaded = False
        return _preloaded


_warming: dict[str, threading.Thread] = {}


def warm_imports(modules) -> threading.Thread | None:
    """Import ``modules`` in a daemon thread (torch's libraries preloaded without the GIL,
    collection paused meanwhile), so that a run started later finds them imported. Returns the
    thread, or None when there is nothing left to import. An import that fails is left for the
    run to report with its own message. :func:`wait_warm` before importing them elsewhere."""
    todo = [m for m in modules if m not in sys.modules and m not in _warming]
    if not todo:
        return None

    def go():
        heap = frozen_heap()
        heap.pause()
        try:
            preload_torch()
            for name in todo:
                try:
                    importlib.import_module(name)
                except Exception as e:  # noqa: BLE001 - the run imports it again and says why
                    log.debug("warm import of %s failed: %s", name, e)
        finally:
            heap.release()

    thread = threading.Thread(target=go, name="napari-sasvi warm imports", daemon=True)
    for name in todo:
        _warming[name] = thread
    thread.start()
    return thread


def wait_warm(timeout: float | None = None) -> None:
    """Wait for the warm imports started so far: two threads importing the same packages at
    once can deadlock on Python's per-module import locks."""
    for thread in set(_warming.values()):
        if thread is not threading.current_thread():
            thread.join(timeout)


class frozen_heap:
    """``with frozen_heap(): ...`` or ``freeze()`` ... ``release()``: while it holds, the objects
    that existed when (last) frozen are left out of garbage collection (``gc.freeze``), so a full
    collection walks only what was made since. Freezing again adds what exists now (the built
    models). Nested holders are counted; the heap is unfrozen when the last one lets go, so
    cycles that died meanwhile are collected then."""

    _holders = 0
    _count_lock = threading.Lock()

    def __init__(self) -> None:
        self._held = False
        self._paused = False

    def pause(self) -> None:
        """No collection at all until :meth:`freeze` or :meth:`release` (if it was enabled)."""
        with frozen_heap._count_lock:
            if gc.isenabled():
                gc.disable()
                self._paused = True

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            gc.enable()

    def freeze(self) -> None:
        with frozen_heap._count_lock:
            if not self._held:
                frozen_heap._holders += 1
                self._held = True
            gc.freeze()
            self._resume()

    def release(self) -> None:
        with frozen_heap._count_lock:
            self._resume()
            if not self._held:
                return
            self._held = False
            frozen_heap._holders -= 1
            if frozen_heap._holders == 0:
                gc.unfreeze()

    def __enter__(self) -> frozen_heap:
        self.freeze()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["frozen_heap", "preload_torch", "wait_warm", "warm_imports"]
