from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import yaml

MANIFEST = Path(__file__).parents[1] / "src" / "napari_sasvi" / "napari.yaml"
PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


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


def test_icon_is_a_shipped_square_png_of_at_least_128_px():
    from importlib.resources import files

    from PIL import Image

    icon = yaml.safe_load(MANIFEST.read_text())["icon"]
    package, resource = icon.split(":")
    path = files(package) / resource
    assert path.is_file(), f"manifest icon {icon} does not resolve to a file"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "the hub takes a PNG icon"
    with Image.open(path) as im:
        assert im.width == im.height >= 128, im.size
        # transparent corners: the frames are drawn on nothing, so the icon sits on any theme
        assert im.mode == "RGBA" and im.getpixel((0, im.height - 1))[3] == 0
    # the wheel ships it: setuptools' package-data names the resource's package and its pattern
    pyproject = tomllib.loads(PYPROJECT.read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"].get(package, [])
    assert any(fnmatch(resource, p) for p in patterns), f"{resource} not in package-data for {package}"


def test_hub_metadata_urls_and_categories():
    from npe2.manifest.schema import Category

    project = tomllib.loads(PYPROJECT.read_text())["project"]
    urls = project["urls"]
    # the names the napari hub reads from PyPI's metadata
    for name in ("Homepage", "Source Code", "Bug Tracker", "User Support", "Documentation"):
        assert urls.get(name, "").startswith("https://"), name
    assert urls["Bug Tracker"].startswith(urls["Source Code"])
    categories = yaml.safe_load(MANIFEST.read_text())["categories"]
    assert categories and set(categories) <= {c.value for c in Category}, categories


def test_python_versions_agree_across_pyproject_and_tox():
    import configparser
    import re

    project = tomllib.loads(PYPROJECT.read_text())["project"]
    floor = re.fullmatch(r">=3\.(\d+)", project["requires-python"])
    assert floor, project["requires-python"]
    classified = sorted(
        int(c.rsplit(".", 1)[1])
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    assert classified[0] == int(floor.group(1)), (classified, project["requires-python"])
    tox = configparser.ConfigParser()
    tox.read(PYPROJECT.with_name("tox.ini"))
    envs = re.fullmatch(r"py\{([\d,]+)\}", tox["tox"]["envlist"].strip())
    assert envs, tox["tox"]["envlist"]
    assert sorted(int(v[1:]) for v in envs.group(1).split(",")) == classified
    # this environment is one the package claims to support
    assert sys.version_info[:2] >= (3, classified[0])
