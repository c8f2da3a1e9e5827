"""What long work yields and returns (the engine's runs, anchors runs and edits): small frozen
records, no arrays. Shared by the engine and the store session that writes the frames."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FrameDone:
    """Frame ``frame`` is finished and written; ``done`` frames of ``total`` are on disk (for an
    edit: of its span)."""

    frame: int
    done: int
    total: int
    fps: float


@dataclass(frozen=True)
class StoreOpened:
    """The output store exists (created or reopened): ``done`` of ``total`` frames are on disk.
    The first item a run yields, before any frame is computed."""

    store: str
    done: int
    total: int


@dataclass(frozen=True)
class RunSummary:
    """How a run (or an anchors run) of one video ended."""

    store: str
    n_frames: int
    frames_written: int
    resumed_from: int
    cancelled: bool
    seconds: float
    events: list[dict] = field(default_factory=list)
    encodes: dict[int, int] = field(default_factory=dict)

    @property
    def restarts(self) -> list[dict]:
        return [e for e in self.events if e["kind"] == "restart"]


@dataclass(frozen=True)
class EditPlan:
    """Where an edit prompts (``prompt_frame``) and which frames it writes (``start``..``stop``,
    inclusive); ``adds``: (frame, class ids) of objects added again inside the span."""

    kind: str
    frame: int
    prompt_frame: int
    start: int
    stop: int
    adds: tuple[tuple[int, tuple[int, ...]], ...] = ()

    @property
    def n_frames(self) -> int:
        return self.stop - self.start + 1


@dataclass(frozen=True)
class EditStarted:
    """An edit's plan is made, its undo data saved and its record in the edit log."""

    plan: EditPlan
    edit_id: int


@dataclass(frozen=True)
class EditSummary:
    """How an edit ended: ``written`` frames from ``start`` on (``start``..``start + written - 1``);
    ``readds``: (frame, class id) of the classes the overseer saw and the tracker had lost, added
    again during the edit."""

    edit_id: int
    kind: str
    frame: int
    start: int
    stop: int
    written: int
    cancelled: bool
    seconds: float
    readds: tuple[tuple[int, int], ...] = ()


__all__ = ["EditPlan", "EditStarted", "EditSummary", "FrameDone", "RunSummary", "StoreOpened"]
