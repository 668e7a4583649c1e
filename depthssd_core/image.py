"""Decoding and validation of raw camera image buffers (as carried by ``sensor_msgs/Image``).

The ROS nodes hand the raw bytes, size, row step and encoding string to :func:`decode_image` and
get a numpy view back, so no message parsing or pixel math lives in a node. :func:`to_rgb`
converts a validated frame of any supported encoding to the RGB uint8 image the network eats.
"""

from __future__ import annotations

import numpy as np

#: Channels of each supported 8-bit colour encoding (ROS ``sensor_msgs/image_encodings`` names).
ENCODING_CHANNELS: dict[str, int] = {
    "bgra8": 4,
    "bgr8": 3,
    "rgb8": 3,
    "rgba8": 4,
    "mono8": 1,
}


def _check_encoding(encoding: str) -> str:
    if not isinstance(encoding, str) or encoding.lower() not in ENCODING_CHANNELS:
        raise ValueError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(ENCODING_CHANNELS)}"
        )
    return encoding.lower()


def decode_image(data: bytes | bytearray | memoryview | np.ndarray, width: int, height: int,
                 step: int, encoding: str) -> np.ndarray:
    """View a raw row-major image buffer as a ``uint8`` array of shape (H, W, C).

    Rows may be padded (``step`` > ``width * channels``); the padding is dropped. The result
    shares memory with ``data`` where possible, so copy it if the buffer will be reused.

    Args:
        data: the raw bytes (``sensor_msgs/Image.data``).
        width: image width in pixels.
        height: image height in pixels.
        step: bytes per row, including any padding.
        encoding: one of :data:`ENCODING_CHANNELS` (``mono8`` gives C = 1).

    Returns:
        uint8 array (height, width, channels).

    Raises:
        ValueError: unknown encoding, non-positive size, a step shorter than a row, or a buffer
            whose length does not match ``step * height``.
    """
    enc = _check_encoding(encoding)
    channels = ENCODING_CHANNELS[enc]
    for name, value in (("width", width), ("height", height), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"image {name} must be a positive integer, got {value!r}")
    row_bytes = width * channels
    if step < row_bytes:
        raise ValueError(
            f"image step {step} is shorter than one row ({width} px x {channels} bytes "
            f"= {row_bytes} bytes for {enc})"
        )
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) \
        else data.reshape(-1).view(np.uint8)
    if buf.size != step * height:
        raise ValueError(
            f"image buffer has {buf.size} bytes but step {step} x height {height} "
            f"= {step * height} bytes were expected"
        )
    rows = buf.reshape(height, step)[:, :row_bytes]
    return rows.reshape(height, width, channels)


def validate_frame(frame: np.ndarray, encoding: str) -> str:
    """Check that ``frame`` is a uint8 (H, W, C) image matching ``encoding``.

    ``mono8`` frames may also be (H, W).

    Returns:
        The normalised (lower-case) encoding name.

    Raises:
        ValueError: naming the problem (type, dtype, rank, channel count, empty image,
            unknown encoding).
    """
    enc = _check_encoding(encoding)
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise ValueError(f"frame dtype must be uint8, got {frame.dtype}")
    channels = ENCODING_CHANNELS[enc]
    if frame.ndim == 2 and channels == 1:
        pass
    elif frame.ndim != 3:
        raise ValueError(f"frame must have shape (H, W, C), got {frame.shape}")
    elif frame.shape[2] != channels:
        raise ValueError(
            f"frame has {frame.shape[2]} channels but encoding {enc} needs {channels}"
        )
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"frame is empty (shape {frame.shape})")
    return enc


def to_rgb(frame: np.ndarray, encoding: str) -> np.ndarray:
    """Convert a validated frame to a C-contiguous RGB uint8 (H, W, 3) image.

    Args:
        frame: uint8 image in ``encoding``.
        encoding: one of :data:`ENCODING_CHANNELS`.

    Returns:
        RGB uint8 array (H, W, 3); a copy except when the input already is contiguous ``rgb8``.
    """
    enc = validate_frame(frame, encoding)
    if enc == "rgb8":
        return np.ascontiguousarray(frame)
    if enc == "rgba8":
        return np.ascontiguousarray(frame[:, :, :3])
    if enc in ("bgr8", "bgra8"):
        return np.ascontiguousarray(frame[:, :, 2::-1])
    mono = frame if frame.ndim == 2 else frame[:, :, 0]
    return np.repeat(mono[:, :, None], 3, axis=2)
