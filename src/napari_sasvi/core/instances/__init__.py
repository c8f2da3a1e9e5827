"""Instance mode: one track per object, with a stable id (see docs/instances.md)."""

from .types import NO_TRACK, TRACK_DTYPE, Instance, InstanceOverseer, TrackInfo, rle_decode, rle_encode

__all__ = ["NO_TRACK", "TRACK_DTYPE", "Instance", "InstanceOverseer", "TrackInfo", "rle_decode", "rle_encode"]
