"""Raw image buffer decoding, frame validation and conversion to RGB for every encoding."""

from __future__ import annotations

import numpy as np
import pytest

from depthssd_core.image import decode_image, to_rgb, validate_frame

W, H = 5, 3


def _rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)


def _encode(rgb: np.ndarray, encoding: str) -> np.ndarray:
    alpha = np.full((H, W, 1), 255, np.uint8)
    return {
        "rgb8": rgb,
        "bgr8": rgb[:, :, ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[:, :, ::-1], alpha], axis=2),
        "mono8": rgb[:, :, :1],
    }[encoding]


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
@pytest.mark.parametrize("padding", [0, 3])
def test_decode_round_trip_with_row_padding(encoding, padding):
    rgb = _rgb()
    img = _encode(rgb, encoding)
    channels = img.shape[2]
    step = W * channels + padding
    rows = np.zeros((H, step), np.uint8)
    rows[:, :W * channels] = img.reshape(H, -1)
    rows[:, W * channels:] = 77  # padding bytes must be dropped
    decoded = decode_image(rows.tobytes(), W, H, step, encoding.upper() if padding else encoding)
    np.testing.assert_array_equal(decoded, img)
    out = to_rgb(decoded, encoding)
    assert out.shape == (H, W, 3) and out.flags.c_contiguous
    want = np.repeat(rgb[:, :, :1], 3, axis=2) if encoding == "mono8" else rgb
    np.testing.assert_array_equal(out, want)


def test_mono8_accepts_2d_frames():
    gray = np.arange(15, dtype=np.uint8).reshape(3, 5)
    np.testing.assert_array_equal(to_rgb(gray, "mono8")[:, :, 2], gray)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((bytes(45), W, H, 15, "yuv422"), "unsupported image encoding"),
        ((bytes(45), 0, H, 15, "rgb8"), "width"),
        ((bytes(45), W, -1, 15, "rgb8"), "height"),
        ((bytes(45), W, H, 0, "rgb8"), "step"),
        ((bytes(45), W, H, 14, "rgb8"), "shorter than one row"),
        ((bytes(44), W, H, 15, "rgb8"), "44 bytes"),
        ((bytes(60), W, H, 15, "rgb8"), "60 bytes"),
        ((bytes(45), 5.0, H, 15, "rgb8"), "width"),
    ],
)
def test_decode_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        decode_image(*args)


@pytest.mark.parametrize(
    ("frame", "encoding", "match"),
    [
        (np.zeros((3, 5, 3), np.float32), "rgb8", "dtype"),
        (np.zeros((3, 5, 4), np.uint8), "rgb8", "4 channels"),
        (np.zeros((3, 5, 3), np.uint8), "bgra8", "needs 4"),
        (np.zeros((3, 5), np.uint8), "rgb8", "shape"),
        (np.zeros((2, 3, 5, 3), np.uint8), "rgb8", "shape"),
        (np.zeros((0, 5, 3), np.uint8), "rgb8", "empty"),
        (np.zeros((3, 5, 3), np.uint8), "rgb16", "unsupported"),
        ([[1, 2, 3]], "rgb8", "numpy array"),
    ],
)
def test_validate_frame_bad_input(frame, encoding, match):
    with pytest.raises(ValueError, match=match):
        validate_frame(frame, encoding)
