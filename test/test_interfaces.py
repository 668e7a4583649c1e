"""The message interfaces depthssd speaks are wire-compatible with upstream ROS 2.

Type hashes (RIHS01) are what ROS 2 Jazzy and later compare when matching a publisher and a
subscriber; ours are read from a live publisher, so they are the ones on the wire.
"""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")

# Upstream vision_msgs 4.x and sensor_msgs hashes (docs/REFERENCES.md, "vision_msgs 4.x").
UPSTREAM_HASHES = {
    "vision_msgs/msg/Detection2DArray":
        "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "vision_msgs/msg/Detection3DArray":
        "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018",
    "vision_msgs/msg/LabelInfo":
        "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "vision_msgs/msg/Detection2D":
        "RIHS01_0d12b69df5c593b3455b7346fac8205437a7d4bcb09b9e0e0b2dde787ded38ea",
    "sensor_msgs/msg/Image":
        "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47",
    "sensor_msgs/msg/CameraInfo":
        "RIHS01_b3dfd68ff46c9d56c80fd3bd4ed22c7a4ddce8c8348f2f59c299e73118e7e275",
}


def _message_class(type_name: str):
    import importlib

    package, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def test_type_hashes_match_upstream(rclpy_context):
    import rclpy

    node = rclpy.create_node("hash_probe", context=rclpy_context)
    try:
        for index, (type_name, expected) in enumerate(UPSTREAM_HASHES.items()):
            topic = f"hash_probe_{index}"
            node.create_publisher(_message_class(type_name), topic, 1)
            (info,) = node.get_publishers_info_by_topic(topic)
            assert info.topic_type == type_name
            assert str(info.topic_type_hash) == expected, type_name
    finally:
        node.destroy_node()


def test_vision_msgs_fields_round_trip_through_serialization():
    from rclpy.serialization import deserialize_message, serialize_message
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    det = Detection2D()
    det.id = "17"
    det.bbox.center.position.x, det.bbox.center.position.y = 320.5, 180.25
    det.bbox.size_x, det.bbox.size_y = 40.0, 30.0
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id, hyp.hypothesis.score = "car", 0.875
    hyp.pose.pose.position.z = 23.5
    det.results.append(hyp)
    array = Detection2DArray()
    array.header.frame_id = "ego_vehicle/rgb_front"
    array.detections.append(det)

    back = deserialize_message(serialize_message(array), Detection2DArray)
    assert back.header.frame_id == "ego_vehicle/rgb_front"
    (got,) = back.detections
    assert (got.id, got.bbox.center.position.x, got.bbox.size_y) == ("17", 320.5, 30.0)
    assert (got.results[0].hypothesis.class_id, got.results[0].hypothesis.score) == ("car", 0.875)
    assert got.results[0].pose.pose.position.z == 23.5
