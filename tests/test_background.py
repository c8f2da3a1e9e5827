"""core/background.py: torch's libraries preloaded without the GIL, the frozen heap, warm imports.

How much each helps napari's event loop is measured by benchmarks/bench_gui.py (--blame-ms), not
here; these tests check what each does."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import pytest

from napari_sasvi.core.background import frozen_heap, wait_warm, warm_imports


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the preload is for Linux")
def test_preload_loads_libtorch_before_the_import_and_torch_still_works():
    out = _python(
        """
        import sys
        from napari_sasvi.core.background import preload_torch

        def mapped():
            with open("/proc/self/maps") as f:
                return "libtorch_cpu" in f.read()

        assert not mapped() and "torch" not in sys.modules
        print("preloaded", preload_torch())
        print("mapped before import", mapped(), "torch imported", "torch" in sys.modules)
        import torch
        print("sum", float((torch.arange(4.0) * 2).sum()))
        print("again", preload_torch())
        """
    )
    assert "preloaded True" in out
    assert "mapped before import True torch imported False" in out
    assert "sum 12.0" in out and "again True" in out


def test_frozen_heap_freezes_counts_holders_and_pauses_collection():
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    a, b = frozen_heap(), frozen_heap()
    a.pause()
    assert not gc.isenabled()
    a.freeze()  # freezing resumes collection
    assert gc.isenabled() and gc.get_freeze_count() > 0
    b.freeze()
    a.release()
    assert gc.get_freeze_count() > 0  # b still holds it
    b.release()
    b.release()  # a second release is a no-op
    assert gc.get_freeze_count() == 0
    with frozen_heap():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    c = frozen_heap()
    c.pause()
    c.release()  # a pause alone ends with release too
    assert gc.isenabled()
    gc.disable()
    try:
        d = frozen_heap()
        d.pause()
        d.release()
        assert not gc.isenabled()  # a collector the user turned off stays off
    finally:
        gc.enable()


def test_warm_imports_imports_in_the_background_and_swallows_failures():
    out = _python(
        """
        import sys
        from napari_sasvi.core.background import wait_warm, warm_imports

        assert "xml.dom.minidom" not in sys.modules
        t = warm_imports(["xml.dom.minidom", "no_such_module_for_sasvi"])
        wait_warm()
        print("thread", t is not None, "alive", t.is_alive())
        print("imported", "xml.dom.minidom" in sys.modules)
        print("again", warm_imports(["xml.dom.minidom", "no_such_module_for_sasvi"]))
        """
    )
    assert "thread True alive False" in out and "imported True" in out and "again None" in out
    assert warm_imports(["json"]) is None  # already imported here
    wait_warm()
