"""Typed exceptions raised by the core library.

Every message says what went wrong *and* what to do about it; the CLI prints them as they are and
the napari shell shows them as notifications.
"""

from __future__ import annotations


class SasviError(Exception):
    """Base class of every error napari-sasvi raises on purpose."""


class InputError(SasviError, ValueError):
    """The input (frames, masks, a class table, an option) cannot be used as given."""


class EmptyInputError(InputError):
    """A folder holds no usable frame or label file."""


class CorruptFrameError(InputError):
    """A frame file cannot be decoded (truncated, not an image, unreadable)."""


class FrameSizeError(InputError):
    """Frames of one video do not all have the same size."""


class LabelEncodingError(InputError):
    """Label files whose values fit no encoding of the class table (the message lists them)."""


class CheckpointError(SasviError):
    """A model checkpoint is missing, unreadable or does not fit the model."""


class StoreMismatchError(SasviError):
    """An output store exists but was made from other inputs or parameters."""


class InputChangedError(StoreMismatchError, InputError):
    """An input changed since a store was made from it (a frame with other content)."""


class StoreBusyError(SasviError):
    """Another process is writing the output store (the same run started twice)."""


class StoreDamagedError(SasviError):
    """A SASVi store whose files are missing or unreadable (it is named, never overwritten)."""


class StoreFullError(SasviError):
    """The disk (or the user's quota) holding an output store is full: the write that failed is not
    recorded, the frames finished before it are kept, and the same command continues once there
    is room again."""


class DeviceError(SasviError):
    """The requested compute device is not available."""
