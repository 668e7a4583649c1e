"""Importing rosbag2 recordings (written here with rosbags, both storage plugins)."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_helpers import toy_frames
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from depthssd_train.cli.data import main
from depthssd_train.dataset.bag_import import pair_stamps
from depthssd_train.dataset.format import load_depth_format, load_index, read_depth_png
from depthssd_train.dataset.validate import validate_dataset

RGB = "/carla/ego_vehicle/rgb_front/image"
DEPTH = "/carla/ego_vehicle/depth_front/image"
INFO = "/carla/ego_vehicle/rgb_front/camera_info"
TS = get_typestore(Stores.ROS2_HUMBLE)
T = TS.types


def _header(stamp_ns: int, frame_id: str):
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9,
                                               nanosec=stamp_ns % 10**9),
        frame_id=frame_id)


def _image(stamp_ns, frame_id, array, encoding):
    height, width = array.shape[:2]
    data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
    return T["sensor_msgs/msg/Image"](
        header=_header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=0, step=data.size // height, data=data)


def _info(stamp_ns, intr):
    roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                do_rectify=False)
    k = intr.matrix().reshape(-1)
    p = np.hstack([intr.matrix(), np.zeros((3, 1))]).reshape(-1)
    return T["sensor_msgs/msg/CameraInfo"](
        header=_header(stamp_ns, "ego_vehicle/rgb_front"), height=intr.height,
        width=intr.width, distortion_model="plumb_bob", d=np.zeros(5), k=k,
        r=np.eye(3).reshape(-1), p=p, binning_x=0, binning_y=0, roi=roi)


def write_bag(path, frames, storage=StoragePlugin.SQLITE3, depth_shape=None, topics=None):
    """A bag like carla-ros-bridge records: bgra8 RGB, 32FC1 depth 2 ms later, camera_info.

    One extra RGB frame has no depth partner and one extra depth frame has no RGB partner."""
    topics = topics or {"rgb": RGB, "depth": DEPTH, "info": INFO}
    with Writer(path, version=9, storage_plugin=storage) as writer:
        conns = {
            "rgb": writer.add_connection(topics["rgb"], "sensor_msgs/msg/Image", typestore=TS),
            "depth": writer.add_connection(topics["depth"], "sensor_msgs/msg/Image",
                                           typestore=TS),
            "info": writer.add_connection(topics["info"], "sensor_msgs/msg/CameraInfo",
                                          typestore=TS),
        }

        def put(kind, stamp_ns, msg):
            writer.write(conns[kind], stamp_ns,
                         TS.serialize_cdr(msg, type(msg).__msgtype__))

        base = 5 * 10**9
        for k, frame in enumerate(frames):
            t = base + k * 50_000_000
            bgra = np.dstack([frame.rgb[..., ::-1], np.full(frame.rgb.shape[:2], 255, np.uint8)])
            depth = frame.depth_m if depth_shape is None else np.ones(depth_shape, np.float32)
            put("info", t, _info(t, frame.intrinsics))
            put("rgb", t, _image(t, "ego_vehicle/rgb_front", bgra, "bgra8"))
            put("depth", t + 2_000_000,
                _image(t + 2_000_000, "ego_vehicle/depth_front", depth.astype(np.float32),
                       "32FC1"))
        t = base + len(frames) * 50_000_000
        put("rgb", t, _image(t, "ego_vehicle/rgb_front",
                             np.zeros((*frames[0].rgb.shape[:2], 4), np.uint8), "bgra8"))
        put("depth", t + 30_000_000, _image(t + 30_000_000, "ego_vehicle/depth_front",
                                            frames[0].depth_m.astype(np.float32), "32FC1"))


def test_pair_stamps_nearest_one_to_one():
    pairs = pair_stamps([0.0, 0.05, 0.1, 0.104], [0.002, 0.049, 0.103, 0.5], 0.01)
    assert pairs == [(0, 0), (1, 1), (3, 2)]  # image 2 loses depth 2 to the closer image 3


@pytest.mark.parametrize("storage", [StoragePlugin.SQLITE3, StoragePlugin.MCAP])
def test_import_round_trip(tmp_path, storage):
    frames = toy_frames(1, 3)
    frames[1].depth_m[0, 0] = np.nan  # ROS depth convention: NaN = no measurement
    write_bag(tmp_path / "drive_01", frames, storage)
    out = tmp_path / "ds"
    assert main(["import-bag", str(tmp_path / "drive_01"), "--out", str(out)]) == 0
    records = load_index(out, "train")
    assert len(records) == 3 and {r.sequence for r in records} == {"drive_01"}
    scale = load_depth_format(out)
    for frame, rec in zip(frames, records, strict=True):
        assert rec.intrinsics == frame.intrinsics
        assert not rec.has_boxes and rec.has_depth
        assert rec.timestamp_s == pytest.approx(5.0 + 0.05 * frame.frame_index)
        depth = read_depth_png(rec.depth_path, scale)
        ok = np.isfinite(frame.depth_m) & (frame.depth_m < 255)
        assert np.max(np.abs(depth[ok] - frame.depth_m[ok])) <= 0.5 / 256 + 1e-5
        assert np.all(depth[~ok] == 0)
    assert validate_dataset(out) == []


def test_missing_topic_is_named_with_those_present(tmp_path, capsys):
    frames = toy_frames(1, 2)
    write_bag(tmp_path / "bag", frames,
              topics={"rgb": "/cam/rgb", "depth": DEPTH, "info": "/cam/info"})
    code = main(["import-bag", str(tmp_path / "bag"), "--out", str(tmp_path / "ds")])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert f"no image topic '{RGB}'" in err and "/cam/rgb (sensor_msgs/msg/Image)" in err
    assert not (tmp_path / "ds").exists()


def test_misaligned_depth_camera_is_rejected_without_output(tmp_path, capsys):
    write_bag(tmp_path / "bag", toy_frames(1, 2), depth_shape=(70, 400))
    assert main(["import-bag", str(tmp_path / "bag"), "--out", str(tmp_path / "ds")]) == 1
    assert "pixel-aligned" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()
    assert main(["import-bag", str(tmp_path / "nope"), "--out", str(tmp_path / "ds")]) == 1
    assert "bag not found" in capsys.readouterr().err


def test_second_bag_appends_a_sequence(tmp_path):
    frames = toy_frames(1, 2)
    write_bag(tmp_path / "drive_01", frames)
    write_bag(tmp_path / "drive_02", frames, StoragePlugin.MCAP)
    out = str(tmp_path / "ds")
    assert main(["import-bag", str(tmp_path / "drive_01"), "--out", out]) == 0
    assert main(["import-bag", str(tmp_path / "drive_02"), "--out", out]) == 1  # exists
    assert main(["import-bag", str(tmp_path / "drive_02"), "--out", out, "--append"]) == 0
    assert [r.sequence for r in load_index(out, "train")] == ["drive_01"] * 2 + ["drive_02"] * 2
    assert validate_dataset(out) == []
