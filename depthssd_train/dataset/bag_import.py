"""Import a rosbag2 recording of carla-ros-bridge cameras into the dataset format.

Reads MCAP or sqlite3 bags with the pure-Python ``rosbags`` library (no ROS installation
needed). The RGB camera (``bgra8`` on the bridge; any 8-bit colour encoding works) is paired
with a pixel-aligned depth camera (``32FC1`` metres, or ``16UC1`` millimetres) by header stamp:
each RGB frame takes the depth frame with the nearest stamp within a tolerance, and each depth
frame is used once. Intrinsics come from the RGB ``camera_info``. Bags carry no boxes, so the
imported frames are depth-only (``has_boxes`` false).

The bridge's default ``depth_front`` camera (400x70) is not aligned with ``rgb_front``; record a
depth camera with the same transform, size and field of view as the RGB camera.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from depthssd_core.geometry import CameraIntrinsics
from depthssd_core.image import decode_image, to_rgb
from depthssd_train.dataset.format import LabeledFrame
from depthssd_train.dataset.writer import DatasetWriter


def _stamp_s(msg: Any) -> float:
    return float(msg.header.stamp.sec) + 1e-9 * float(msg.header.stamp.nanosec)


def decode_depth_image(msg: Any, topic: str = "depth") -> np.ndarray:
    """Planar depth in metres (float32, NaN where the message has none) from a depth Image.

    Raises:
        ValueError: naming the topic on an unsupported encoding or a malformed buffer.
    """
    encoding = str(msg.encoding).lower()
    dtypes = {"32fc1": np.float32, "16uc1": np.uint16}
    if encoding not in dtypes:
        raise ValueError(f"{topic}: depth encoding {msg.encoding!r} is not supported "
                         "(expected 32FC1 metres or 16UC1 millimetres)")
    dtype = np.dtype(dtypes[encoding]).newbyteorder(">" if msg.is_bigendian else "<")
    width, height, step = int(msg.width), int(msg.height), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8)
    if step < width * dtype.itemsize or data.size < step * height:
        raise ValueError(f"{topic}: depth buffer of {data.size} bytes (step {step}) is too "
                         f"small for {width}x{height} {msg.encoding}")
    rows = data[:step * height].reshape(height, step)[:, :width * dtype.itemsize]
    values = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
    if encoding == "16uc1":
        depth = values.astype(np.float32) * np.float32(0.001)
        depth[values == 0] = np.nan
        return depth
    return values.astype(np.float32)


def _decode_rgb(msg: Any, topic: str) -> np.ndarray:
    try:
        raw = decode_image(np.asarray(msg.data, np.uint8), int(msg.width), int(msg.height),
                           int(msg.step), str(msg.encoding))
        return to_rgb(raw, str(msg.encoding))
    except ValueError as err:
        raise ValueError(f"{topic}: {err}") from None


def pair_stamps(image_stamps_s: list[float], depth_stamps_s: list[float],
                tolerance_s: float) -> list[tuple[int, int]]:
    """Pair each image with the nearest depth stamp within ``tolerance_s``, one-to-one.

    Where two images want the same depth frame the closer one keeps it.

    Returns:
        (image index, depth index) pairs sorted by image index.
    """
    order = sorted(range(len(depth_stamps_s)), key=lambda k: depth_stamps_s[k])
    sorted_stamps = [depth_stamps_s[k] for k in order]
    best: dict[int, tuple[float, int]] = {}  # depth index -> (gap, image index)
    for i, stamp in enumerate(image_stamps_s):
        pos = bisect.bisect_left(sorted_stamps, stamp)
        candidates = [p for p in (pos - 1, pos) if 0 <= p < len(sorted_stamps)]
        if not candidates:
            continue
        p = min(candidates, key=lambda q: abs(sorted_stamps[q] - stamp))
        gap = abs(sorted_stamps[p] - stamp)
        if gap <= tolerance_s and (order[p] not in best or gap < best[order[p]][0]):
            best[order[p]] = (gap, i)
    return sorted((i, d) for d, (_, i) in best.items())


class _Bag:
    """Thin wrapper over ``rosbags`` that names topics in its errors."""

    def __init__(self, path: Path) -> None:
        from rosbags.rosbag2 import Reader
        from rosbags.typesys import Stores, get_typestore

        self.path = path
        if not path.exists():
            raise ValueError(f"{path}: bag not found")
        try:
            self.reader = Reader(path)
            self.reader.open()
        except Exception as err:  # rosbags raises its own error types for unreadable bags
            raise ValueError(f"{path}: cannot open as a rosbag2 ({err})") from None
        self.typestore = get_typestore(Stores.ROS2_HUMBLE)

    def close(self) -> None:
        self.reader.close()

    def connections(self, topic: str, kind: str) -> list[Any]:
        conns = [c for c in self.reader.connections if c.topic == topic]
        if not conns:
            present = ", ".join(sorted(f"{c.topic} ({c.msgtype})"
                                       for c in self.reader.connections)) or "none"
            raise ValueError(f"{self.path}: no {kind} topic {topic!r} in the bag; topics "
                             f"present: {present}")
        return conns

    def messages(self, conns: list[Any]) -> Iterator[tuple[str, Any]]:
        for conn, _, raw in self.reader.messages(connections=conns):
            yield conn.topic, self.typestore.deserialize_cdr(raw, conn.msgtype)


def _intrinsics_from_info(bag: _Bag, topic: str) -> CameraIntrinsics:
    for _, msg in bag.messages(bag.connections(topic, "camera_info")):
        try:
            return CameraIntrinsics.from_matrix(np.asarray(msg.k, np.float64), int(msg.width),
                                                int(msg.height))
        except ValueError as err:
            raise ValueError(f"{topic}: camera_info is not usable ({err})") from None
    raise ValueError(f"{bag.path}: topic {topic!r} has no messages")


def import_bag(bag_path: Path | str, out_root: Path | str, *, split: str = "train",
               sequence: str | None = None,
               image_topic: str = "/carla/ego_vehicle/rgb_front/image",
               depth_topic: str = "/carla/ego_vehicle/depth_front/image",
               info_topic: str = "/carla/ego_vehicle/rgb_front/camera_info",
               tolerance_s: float = 0.01, overwrite: bool = False,
               append: bool = False) -> int:
    """Import paired RGB + depth frames of a bag as one sequence of ``split``.

    Args:
        bag_path: rosbag2 folder (with ``metadata.yaml``).
        out_root: dataset root to write into.
        split: split to create.
        sequence: sequence name (default: the bag folder name, sanitised).
        image_topic: RGB image topic.
        depth_topic: depth image topic, pixel-aligned with the RGB camera.
        info_topic: camera_info of the RGB camera.
        tolerance_s: largest header-stamp difference of a pair.
        overwrite: replace an existing split.
        append: add the bag as a new sequence of an existing split.

    Returns:
        The number of frames written.

    Raises:
        ValueError: on a missing topic (naming it and listing those present), a missing
            camera_info, misaligned image sizes, bad encodings, or no pairs at all.
    """
    bag_path = Path(bag_path)
    if sequence is None:
        sequence = re.sub(r"[^A-Za-z0-9_.-]", "_", bag_path.resolve().name).lstrip("._-") or "bag"
    bag = _Bag(bag_path)
    try:
        image_conns = bag.connections(image_topic, "image")
        depth_conns = bag.connections(depth_topic, "depth")
        intrinsics = _intrinsics_from_info(bag, info_topic)
        # Pass 1: stamps only, so pairing is exact nearest-neighbour without holding images.
        stamps: dict[str, list[float]] = {image_topic: [], depth_topic: []}
        for topic, msg in bag.messages(image_conns + depth_conns):
            stamps[topic].append(_stamp_s(msg))
        pairs = pair_stamps(stamps[image_topic], stamps[depth_topic], tolerance_s)
        if not pairs:
            raise ValueError(f"{bag_path}: no {image_topic} frame has a {depth_topic} frame "
                             f"within {tolerance_s * 1000:.1f} ms")
        with DatasetWriter(out_root, split, nan_is_invalid=True, overwrite=overwrite,
                           append=append) as writer:
            for frame_index, (rgb, depth, stamp) in enumerate(
                    _paired_frames(bag, image_conns, depth_conns, image_topic, pairs)):
                if rgb.shape[:2] != (intrinsics.height, intrinsics.width):
                    raise ValueError(f"{image_topic}: image is {rgb.shape[1]}x{rgb.shape[0]} "
                                     f"but {info_topic} says "
                                     f"{intrinsics.width}x{intrinsics.height}")
                if depth.shape != rgb.shape[:2]:
                    raise ValueError(f"{depth_topic}: depth is {depth.shape[1]}x"
                                     f"{depth.shape[0]} but {image_topic} is {rgb.shape[1]}x"
                                     f"{rgb.shape[0]}; the cameras must be pixel-aligned")
                writer.add(LabeledFrame(sequence=sequence, frame_index=frame_index, rgb=rgb,
                                        intrinsics=intrinsics, timestamp_s=stamp,
                                        depth_m=depth, objects=None))
        return writer.num_frames
    finally:
        bag.close()


def _paired_frames(bag: _Bag, image_conns: list[Any], depth_conns: list[Any],
                   image_topic: str, pairs: list[tuple[int, int]]
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """Pass 2: decode only paired messages, holding each until its partner arrives."""
    depth_of_image = dict(pairs)
    image_of_depth = {d: i for i, d in pairs}
    images: dict[int, tuple[np.ndarray, float]] = {}
    depths: dict[int, np.ndarray] = {}
    done: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    next_out = 0
    counters = {"image": 0, "depth": 0}
    order = [i for i, _ in pairs]
    for topic, msg in bag.messages(image_conns + depth_conns):
        kind = "image" if topic == image_topic else "depth"
        k = counters[kind]
        counters[kind] += 1
        if kind == "image" and k in depth_of_image:
            images[k] = (_decode_rgb(msg, topic), _stamp_s(msg))
        elif kind == "depth" and k in image_of_depth:
            depths[k] = decode_depth_image(msg, topic)
        else:
            continue
        i = k if kind == "image" else image_of_depth[k]
        d = depth_of_image[i]
        if i in images and d in depths:
            rgb, stamp = images.pop(i)
            done[i] = (rgb, depths.pop(d), stamp)
        # Emit in image order so frame indices follow time.
        while next_out < len(order) and order[next_out] in done:
            yield done.pop(order[next_out])
            next_out += 1
