"""The stamp-keyed camera_info buffer: the pairing rule, the fallback and the lost-image count.

Pure logic (no ROS); ``test_perception_node.py`` checks the same rule over real topics.
"""

from __future__ import annotations

import pytest

from depthssd_core.geometry import CameraIntrinsics
from depthssd_ros.camera_info_pairing import CameraInfoBuffer

W, H = 192, 108
K90 = CameraIntrinsics.from_fov(W, H, 90.0)
K60 = CameraIntrinsics.from_fov(W, H, 60.0)
BIG = CameraIntrinsics.from_fov(4096, 3072, 90.0)
S = 1_000_000_000


def test_each_image_gets_the_camera_info_of_its_own_stamp():
    buf = CameraInfoBuffer()
    buf.add_info(1 * S, K90)
    buf.add_info(2 * S, K60)  # arrives before image 1 is handled
    buf.note_image(1 * S)
    assert buf.pair(1 * S, W, H).intrinsics == K90
    buf.note_image(2 * S)
    assert buf.pair(2 * S, W, H).intrinsics == K60
    assert buf.counts.paired == 2 and buf.counts.infos_without_image == 0


def test_an_invalid_camera_info_rejects_only_its_own_frame():
    buf = CameraInfoBuffer()
    buf.add_info(1 * S, K90)
    buf.add_info(2 * S, None, "fx is nan")
    buf.add_info(3 * S, K90)
    assert buf.pair(1 * S, W, H).status == "paired"
    bad = buf.pair(2 * S, W, H)
    assert (bad.status, bad.kind) == ("rejected", "camera_info_invalid")
    assert "fx is nan" in bad.reason
    assert buf.pair(3 * S, W, H).status == "paired"
    # The invalid one is its frame's: it is rejected, never replaced by a valid neighbour.
    assert buf.fallback(2 * S, W, H).status == "rejected"
    assert buf.counts.infos_invalid == 1


def test_a_camera_info_of_another_size_rejects_its_frame_but_not_the_next():
    buf = CameraInfoBuffer()
    buf.add_info(1 * S, K90)
    buf.add_info(2 * S, BIG)  # its 4096x3072 image never arrives
    buf.add_info(3 * S, K60)
    buf.note_image(1 * S)
    buf.note_image(3 * S)
    assert buf.pair(3 * S, W, H).intrinsics == K60
    assert buf.counts.infos_without_image == 1
    # An image that does arrive with a camera_info of another size is rejected, named.
    wrong = buf.pair(2 * S, 640, 360)
    assert (wrong.status, wrong.kind) == ("rejected", "camera_info_size")
    assert "640x360" in wrong.reason and "4096x3072" in wrong.reason


def test_missing_camera_info_falls_back_to_the_latest_valid_one_of_the_same_size():
    buf = CameraInfoBuffer()
    buf.add_info(1 * S, K90)
    buf.add_info(2 * S, BIG)
    assert buf.pair(5 * S, W, H) is None  # may still come
    choice = buf.fallback(5 * S, W, H)
    assert (choice.status, choice.intrinsics) == ("fallback", K90)
    assert "1.000000000 s" in choice.reason
    assert buf.counts.fallback == 1
    none = buf.fallback(6 * S, 800, 600)
    assert (none.status, none.kind) == ("rejected", "no_camera_info")


def test_a_camera_info_arriving_after_its_image_is_still_its_own():
    buf = CameraInfoBuffer()
    buf.add_info(1 * S, K90)
    buf.note_image(1 * S)
    buf.note_image(2 * S)
    assert buf.pair(2 * S, W, H) is None
    assert not buf.own_info_lost(2 * S)
    buf.add_info(2 * S, K60)
    assert buf.pair(2 * S, W, H).intrinsics == K60
    assert buf.counts.infos_without_image == 0


def test_a_later_camera_info_ends_the_wait():
    buf = CameraInfoBuffer()
    buf.add_info(1 * S, K90)
    buf.note_image(2 * S)
    buf.add_info(3 * S, K60)  # camera_info 2 was lost: 3 came after it
    assert buf.own_info_lost(2 * S)
    assert buf.fallback(2 * S, W, H).intrinsics == K60


def test_slop_pairs_nearby_stamps_only():
    buf = CameraInfoBuffer(slop_ns=2_000_000)
    buf.add_info(1 * S, K90)
    buf.add_info(1 * S + 40_000_000, K60)
    assert buf.pair(1 * S + 1_000_000, W, H).intrinsics == K90
    assert buf.pair(1 * S + 39_000_000, W, H).intrinsics == K60
    assert buf.pair(1 * S + 20_000_000, W, H) is None


def test_infos_without_image_counted_once_on_eviction_and_after_a_bag_loop():
    buf = CameraInfoBuffer(info_capacity=4)
    for i in range(10):
        buf.add_info(i * S, K90)
    # No image at all: the six evicted ones are counted, the four kept are not yet.
    assert buf.counts.infos_without_image == 6
    buf.note_image(9 * S)
    assert buf.counts.infos_without_image == 9
    buf.note_image(9 * S)
    assert buf.counts.infos_without_image == 9
    # Time goes backwards (a bag loop): the new stamps are not mistaken for lost images.
    buf.add_info(1 * S, K90)
    buf.note_image(1 * S)
    assert buf.pair(1 * S, W, H).status == "paired"
    assert buf.counts.infos_without_image == 9


def test_invalid_arguments():
    with pytest.raises(ValueError, match="slop_ns"):
        CameraInfoBuffer(slop_ns=-1)
