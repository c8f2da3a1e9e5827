from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from napari_sasvi.core.errors import CorruptFrameError, EmptyInputError, FrameSizeError, InputError
from napari_sasvi.core.inputs.frames import FolderSource, frame_sort_key, list_frame_files, open_frames, to_rgb_uint8


def test_sort_key_uses_trailing_integer():
    names = [
        "frame_561_endo.png",
        "frame_99_endo.png",
        "Video1_frame000120.png",
        "Video1_frame000020.png",
        "0000000010.jpg",
        "0000000002.jpg",
        "0001.jpg",
        "12.jpg",
        "x.jpg",
    ]
    ordered = sorted(names, key=frame_sort_key)
    # numbers compare as integers, not strings; a name with no digit goes last
    assert [frame_sort_key(n)[0] for n in ordered[:-1]] == sorted(frame_sort_key(n)[0] for n in names[:-1])
    assert ordered[-1] == "x.jpg"
    assert frame_sort_key("frame_561_endo.png")[0] == 561
    assert frame_sort_key("Video1_frame000120.png")[0] == 120
    assert frame_sort_key("0000000000.jpg")[0] == 0


def test_folder_order_is_numeric(tmp_path):
    for i in (10, 2, 1, 100, 0):
        Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    files = list_frame_files(tmp_path)
    assert [f.stem for f in files] == ["0", "1", "2", "10", "100"]
    stack = open_frames(tmp_path)
    assert [int(stack.frame(t)[0, 0, 0]) for t in range(5)] == [0, 1, 2, 10, 100]


def test_folder_stack_is_lazy_dask(frame_folder, small_frames):
    stack = open_frames(frame_folder)
    assert stack.name == "video01"
    data = stack.data
    assert data.shape == small_frames.shape and data.dtype == np.uint8
    assert data.chunks[0] == (1,) * len(small_frames)
    assert stack.source.decoded == 0
    np.testing.assert_array_equal(np.asarray(data[5]), small_frames[5])
    assert stack.source.decoded == 1
    np.testing.assert_array_equal(data.compute(), small_frames)


@pytest.mark.slow  # 3-5 s here (5,000 files / a plain-loop reference / a forest)
def test_opening_5000_frame_folder_decodes_nothing(tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    tiny = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    tiny.save(folder / "0000000000.png")
    payload = (folder / "0000000000.png").read_bytes()
    for t in range(1, 5000):
        (folder / f"{t:010d}.png").write_bytes(payload)
    stack = open_frames(folder)
    data = stack.data
    assert data.shape == (5000, 8, 8, 3)
    assert stack.source.decoded == 0
    _ = np.asarray(data[4321])
    assert stack.source.decoded == 1


@pytest.mark.parametrize(
    ("mode", "array"),
    [
        ("L", np.arange(64, dtype=np.uint8).reshape(8, 8)),
        ("RGBA", np.dstack([np.full((8, 8), c, np.uint8) for c in (10, 20, 30, 40)])),
        ("I;16", (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)),
    ],
)
def test_grey_rgba_16bit_become_rgb_uint8(tmp_path, mode, array):
    Image.fromarray(array).save(tmp_path / "0.png")
    frame = open_frames(tmp_path).frame(0)
    assert frame.shape == (8, 8, 3) and frame.dtype == np.uint8
    if mode == "RGBA":
        assert tuple(frame[0, 0]) == (10, 20, 30)
    elif mode == "I;16":
        assert frame[7, 7, 0] == round(63000 / 257) and (frame[..., 0] == frame[..., 2]).all()
    else:
        assert frame[7, 7, 1] == 63


def test_16bit_rgb_tiff(tmp_path):
    import cv2

    rgb16 = np.zeros((6, 6, 3), np.uint16)
    rgb16[..., 0] = 65535  # red
    cv2.imwrite(str(tmp_path / "0.tif"), rgb16[..., ::-1])  # OpenCV writes BGR
    frame = open_frames(tmp_path).frame(0)
    assert tuple(frame[0, 0]) == (255, 0, 0)


def test_to_rgb_uint8_float_and_bad_shape():
    out = to_rgb_uint8(np.full((2, 2, 3), 0.5, np.float32))
    assert out.dtype == np.uint8 and out[0, 0, 0] == 128
    with pytest.raises(InputError):
        to_rgb_uint8(np.zeros((2, 2, 5)))


def test_empty_folder_error_names_it(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(EmptyInputError, match=str(tmp_path.name)):
        open_frames(tmp_path)


def test_missing_path_and_unknown_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_frames(tmp_path / "nope")
    f = tmp_path / "a.txt"
    f.write_text("x")
    with pytest.raises(InputError, match="neither a folder"):
        open_frames(f)


def test_truncated_frame_error_names_file(frame_folder):
    victim = sorted(frame_folder.iterdir())[3]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    stack = open_frames(frame_folder)
    stack.frame(2)  # other frames still read
    with pytest.raises(CorruptFrameError, match=victim.name):
        stack.frame(3)


def test_png_frames_of_every_kind_decode_as_pillow_decodes_them(tmp_path):
    """8-bit RGB PNGs are decoded by OpenCV (less CPU), every other file by Pillow; the pixels
    must be Pillow's for every kind, or a store's content hashes (and its labels) would change. A
    PNG OpenCV refuses (no IEND: Pillow reads it) or one both refuse behaves as before."""
    import cv2

    from napari_sasvi.core.inputs.frames import _decode_image_file, _decode_rgb8_png

    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    files = {}
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    files["rgb.png"] = True
    Image.fromarray(rgb).save(tmp_path / "rgb_interlaced.png", interlace=1)
    files["rgb_interlaced.png"] = True
    im = Image.fromarray(rgb)
    im.info["transparency"] = tuple(int(v) for v in rgb[0, 0])
    im.save(tmp_path / "rgb_trns.png", transparency=tuple(int(v) for v in rgb[0, 0]))
    files["rgb_trns.png"] = True
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb).quantize(16).save(tmp_path / "palette.png")
    cv2.imwrite(str(tmp_path / "rgb16.png"), rng.integers(0, 65536, (37, 53, 3), dtype=np.uint16))
    for name in ("gray.png", "rgba.png", "palette.png", "rgb16.png"):
        files[name] = False
    for name, fast in files.items():
        path = tmp_path / name
        with Image.open(path) as ref:
            if ref.mode == "RGB" and not name.startswith("rgb16"):
                expect = np.asarray(ref)
            else:
                from napari_sasvi.core.inputs.frames import to_rgb_uint8

                expect = to_rgb_uint8(np.asarray(ref if ref.mode not in ("P", "RGBA") else ref.convert("RGB")))
        assert (_decode_rgb8_png(path) is not None) == fast, name
        got = _decode_image_file(path)
        assert got.dtype == np.uint8 and got.shape == (37, 53, 3) and got.flags.c_contiguous, name
        np.testing.assert_array_equal(got, expect, err_msg=name)

    data = (tmp_path / "rgb.png").read_bytes()
    (tmp_path / "no_iend.png").write_bytes(data[:-12])  # OpenCV refuses it; Pillow reads it, as before
    assert _decode_rgb8_png(tmp_path / "no_iend.png") is None
    np.testing.assert_array_equal(_decode_image_file(tmp_path / "no_iend.png"), rgb)
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFrameError, match="half.png"):
        _decode_image_file(tmp_path / "half.png")


def test_truncated_jpeg_is_an_error(tmp_path):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    img.save(tmp_path / "0000.jpg", quality=90)
    data = (tmp_path / "0000.jpg").read_bytes()
    (tmp_path / "0000.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFrameError, match="0000.jpg"):
        open_frames(tmp_path).frame(0)


def test_not_an_image_first_file(tmp_path):
    (tmp_path / "0000.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(CorruptFrameError, match="0000.jpg"):
        open_frames(tmp_path)


def test_frames_of_different_sizes(frame_folder):
    odd = sorted(frame_folder.iterdir())[4]
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(odd)
    stack = open_frames(frame_folder)
    with pytest.raises(FrameSizeError, match=odd.name):
        stack.frame(4)


def test_array_source_numpy_and_dask(small_frames):
    import dask.array as da

    grey = small_frames[..., 0]
    stack = open_frames(grey, name="grey")
    assert stack.shape == (*grey.shape, 3)
    np.testing.assert_array_equal(stack.frame(3)[..., 1], grey[3])
    lazy = da.from_array(small_frames, chunks=(1, -1, -1, -1))
    np.testing.assert_array_equal(open_frames(lazy).data[7].compute(), small_frames[7])
    with pytest.raises(InputError):
        open_frames(np.zeros((3, 4)))


def _ledger(tmp_path, stack):
    """The content ledger a run keeps in its store (here: a bare zarr group), reopened on each call."""
    import zarr

    from napari_sasvi.core.store.fingerprint import InputLedger

    return InputLedger(zarr.open_group(tmp_path / "store.zarr", mode="a"), stack, "store.zarr")


def test_a_changed_frame_file_same_name_and_size_is_noticed(tmp_path, small_frames):
    """FolderSource.fingerprint (and the run signature's structural fingerprint) hash names and
    sizes: a removed file changes them, a file whose pixels changed in place does not. The store's
    per-frame hashes and file stats notice that one: on resume, verify_files decodes the finished
    frames whose file changed on disk and refuses the changed content."""
    from napari_sasvi.core.errors import InputChangedError
    from napari_sasvi.core.store.fingerprint import structural_fingerprint

    folder = tmp_path / "v"
    folder.mkdir()
    for t, f in enumerate(small_frames):
        Image.fromarray(f).save(folder / f"{t:04d}.bmp")  # BMP: the byte size does not depend on the pixels
    stack = open_frames(folder)
    fingerprint, structure = FolderSource(folder).fingerprint(), structural_fingerprint(stack)
    assert FolderSource(folder).fingerprint() == fingerprint
    with _ledger(tmp_path, stack).reading(stack):  # what a run does: every frame read is hashed into the store
        for t in range(len(stack)):
            stack.frame(t)

    victim = folder / "0007.bmp"  # neither the first, the middle nor the last frame
    before = victim.stat()
    changed = small_frames[7].copy()
    changed[20, 30] ^= 0xFF
    Image.fromarray(changed).save(victim)
    # an edit made after the run (a rewrite within the same clock tick would keep the old mtime)
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns + 2 * 10**9))
    assert victim.stat().st_size == before.st_size
    assert FolderSource(folder).fingerprint() == fingerprint  # names and sizes: no change
    assert structural_fingerprint(open_frames(folder)) == structure

    resumed = open_frames(folder)
    again = _ledger(tmp_path, resumed)
    with pytest.raises(InputChangedError, match=r"frame 7 \(0007.bmp\) differs"):
        again.verify_files(len(resumed))
    # the original pixels back (a newer mtime still): decoded once, found the same, trusted after
    Image.fromarray(small_frames[7]).save(victim)
    assert again.verify_files(len(resumed)) == 1
    assert again.verify_files(len(resumed)) == 0

    (folder / "0000.bmp").unlink()  # another set of files: the fingerprints refuse it at once
    assert FolderSource(folder).fingerprint() != fingerprint
    assert structural_fingerprint(open_frames(folder)) != structure


def test_a_changed_frame_of_an_array_is_noticed_whichever_frame(tmp_path, small_frames):
    """Arrays have no files to stat: their content is checked frame by frame as it is read again.
    One bit of any frame, not only of a sampled first/middle/last one, is refused; the same
    pixels pass."""
    from napari_sasvi.core.errors import InputChangedError
    from napari_sasvi.core.store.fingerprint import frame_digest

    data = small_frames.copy()
    stack = open_frames(data)
    with _ledger(tmp_path, stack).reading(stack):
        for t in range(len(stack)):
            stack.frame(t)  # the first read of each frame: hashed and kept
    resumed = open_frames(data)
    ledger = _ledger(tmp_path, resumed)  # the hashes come back from the store
    with ledger.reading(resumed):
        for t in range(len(data)):
            y, x, c = (5 * t) % data.shape[1], (7 * t) % data.shape[2], t % 3
            data[t, y, x, c] ^= 0x01
            with pytest.raises(InputChangedError, match=f"frame {t} differs"):
                resumed.frame(t)
            data[t, y, x, c] ^= 0x01
            resumed.frame(t)
    assert ledger.checked == 2 * len(data)
    # the digest covers every pixel, and the shape: the same bytes in another shape are another frame
    d = frame_digest(small_frames[4])
    assert np.array_equal(d, frame_digest(small_frames[4].copy())) and d.dtype == np.uint8 and d.shape == (16,)
    assert not np.array_equal(d, frame_digest(small_frames[4, :, :-1]))
    flat = np.zeros((4, 6, 3), np.uint8)
    assert not np.array_equal(frame_digest(flat), frame_digest(flat.reshape(6, 4, 3)))


def test_the_ledger_writes_hashes_in_batches_and_all_of_them_when_reading_ends(tmp_path, monkeypatch):
    """A zarr write per frame costs about a third of a frame's decoding: the hashes are written
    every FLUSH_FRAMES frames (or FLUSH_SECONDS), and whatever is left when the reading block ends,
    by an error too. Frames read far apart are written as separate spans, and the store ends up
    holding exactly the hashes a write per frame would have left."""
    import zarr

    from napari_sasvi.core.store import fingerprint
    from napari_sasvi.core.store.fingerprint import InputLedger, frame_digest

    monkeypatch.setattr(fingerprint, "FLUSH_FRAMES", 8)
    data = np.random.default_rng(3).integers(0, 255, (100, 6, 5, 3), dtype=np.uint8)
    stack = open_frames(data)

    def stored() -> np.ndarray:
        return np.asarray(zarr.open_group(tmp_path / "store.zarr", mode="r")[fingerprint.HASHES][:])

    ledger = _ledger(tmp_path, stack)
    with pytest.raises(RuntimeError, match="stopped"), ledger.reading(stack):
        for t in range(20):
            stack.frame(t)
        assert ledger.writes == 2  # frames 0-7, then 8-15
        assert stored()[:16].any(axis=1).all() and not stored()[16:].any()
        stack.frame(90)  # far from the others: a span of its own, not the 70 rows between
        raise RuntimeError("stopped")
    assert stack.on_read is None
    assert ledger.writes == 4  # 16-19 and 90, when the block ended by the error
    expect = np.zeros((100, 16), np.uint8)
    for t in [*range(20), 90]:
        expect[t] = frame_digest(data[t])
    np.testing.assert_array_equal(stored(), expect)

    # a slow run writes about as often as it reads: after FLUSH_SECONDS, the next frame writes
    monkeypatch.setattr(fingerprint, "FLUSH_SECONDS", 0.0)
    again = InputLedger(zarr.open_group(tmp_path / "store.zarr", mode="a"), stack, "store.zarr")
    again.check(20, data[20])
    assert again.writes == 1 and stored()[20].any()
    again.check(5, data[5])  # known already: compared, nothing to write
    assert again.writes == 1 and again.checked == 1


def test_a_folder_frame_read_by_two_consumers_is_decoded_and_hashed_once(tmp_path, small_frames):
    """The overseer's batch and then the tracker read the same frame: the stack keeps the last
    frames it decoded, hands out copies,
    and calls the ledger hook once per decode. Arrays are read afresh every time."""
    folder = tmp_path / "v"
    folder.mkdir()
    for t, f in enumerate(small_frames):
        Image.fromarray(f).save(folder / f"{t:04d}.png")
    stack = open_frames(folder)
    reads, hooks = [], []
    real_read = stack.source.read
    stack.source.read = lambda t: reads.append(t) or real_read(t)
    stack.on_read = lambda t, frame: hooks.append(t)
    first = stack.frame(3)
    again = stack.frame(3)
    assert not np.shares_memory(first, again)  # each caller its own copy
    np.testing.assert_array_equal(again, small_frames[3])
    assert reads == [3] and hooks == [3]
    stack.frame(-len(small_frames) + 3)  # the same frame by a negative index
    assert reads == [3]

    arr = open_frames(small_frames.copy())
    arr_hooks = []
    arr.on_read = lambda t, frame: arr_hooks.append(t)
    arr.frame(2), arr.frame(2)
    assert arr_hooks == [2, 2]
