"""The segment form's dataset (class table): chosen by the user, or taken from the input, never a
silent default.

Left at :data:`CHOOSE_DATASET`, a run takes the classes from, in order: the output store when it
exists (a resumed run must use its table anyway), the replayed overseer labels layer, the
annotations layer (layers napari-sasvi made carry their table in ``metadata["classes"]``), or,
for instances replayed from label files, the files themselves (``from-labels``). Anything else
is an error that says to choose one.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.config import FROM_LABELS
from ..core.datasets import PRESETS, ClassTable
from ..core.errors import InputError
from ..core.store.sasvi_store import SasviStore
from .reader import _is_sasvi_store

CHOOSE_DATASET = "choose..."
CLASS_TABLE_FILE = "class table file"


def dataset_for_run(choice: str, table_file, out: Path, layers: list, from_labels: bool) -> str:
    """The ``dataset`` of a run (a preset name, a class table file or ``from-labels``).

    Args:
        choice: the form's dataset entry (a preset, :data:`CLASS_TABLE_FILE` or :data:`CHOOSE_DATASET`).
        table_file: the class table file chosen (read for :data:`CLASS_TABLE_FILE`).
        out: the output store.
        layers: the labels layers the run reads (replayed overseer, annotations), first first; None skipped.
        from_labels: instances replayed from label files (they bring their classes).

    Raises:
        InputError: nothing says which classes the input holds.
    """
    if choice == CLASS_TABLE_FILE:
        return str(table_file)
    if choice != CHOOSE_DATASET:
        return choice
    found = _store_classes(out)
    for layer in layers:
        if found is None and layer is not None:
            found = _layer_classes(layer)
    if found is not None:
        return _as_dataset(found, out)
    if from_labels:
        return FROM_LABELS
    raise InputError(
        "Choose the dataset (the class table) under 'dataset': the inputs do not say which classes they hold "
        "(layers opened or made by napari-sasvi do)."
    )


def _layer_classes(layer) -> ClassTable | None:
    table = (getattr(layer, "metadata", None) or {}).get("classes")
    return ClassTable.from_dict(table) if table else None


def _store_classes(path: Path) -> ClassTable | None:
    if not _is_sasvi_store(path):
        return None
    return SasviStore.read(path).classes


def _as_dataset(classes: ClassTable, out: Path) -> str:
    """A preset's name when ``classes`` is that preset, else the table written beside the output
    store (``<store>_classes.json``), which the run reads like any class table file."""
    preset = PRESETS.get(classes.name)
    if preset is not None and preset.to_dict() == classes.to_dict():
        return classes.name
    table = out.with_name(f"{out.stem}_classes.json")
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(json.dumps(classes.to_dict(), indent=2), encoding="utf-8")
    return str(table)
