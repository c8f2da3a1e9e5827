from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import yaml

MANIFEST = Path(__file__).parents[1] / "src" / "napari_sasvi" / "napari.yaml"


def test_every_python_name_imports():
    manifest = yaml.safe_load(MANIFEST.read_text())
    names = [c["python_name"] for c in manifest["contributions"]["commands"]]
    assert names
    for name in names:
        module, attr = name.split(":")
        obj = getattr(importlib.import_module(module), attr)
        assert callable(obj), name


def test_npe2_validate():
    from npe2 import PluginManifest

    pm = PluginManifest.from_file(MANIFEST)
    pm.validate_imports()
    # the npe2 of this environment, not whichever one is first on PATH
    npe2 = Path(sys.executable).with_name("npe2")
    out = subprocess.run([str(npe2), "validate", str(MANIFEST)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_core_and_cli_import_no_gui_and_no_torch_at_package_level():
    code = (
        "import sys, napari_sasvi, napari_sasvi.cli, napari_sasvi.core.inputs.frames, napari_sasvi.core.inputs.video, "
        "napari_sasvi.core.synthetic, napari_sasvi.core.exports, napari_sasvi.core.datasets;"
        "import pkgutil, importlib, napari_sasvi.core as c;"
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(c.__path__, 'napari_sasvi.core.')];"
        "bad = [m for m in ('napari', 'qtpy', 'magicgui', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"core/CLI imported GUI modules: {out.stdout}"
    out = subprocess.run(
        [sys.executable, "-c", "import sys, napari_sasvi; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "False"
