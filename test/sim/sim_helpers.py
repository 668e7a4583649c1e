"""Checks the synthetic-world tests share."""

from __future__ import annotations

import numpy as np
import pytest

from depthssd_core.geometry import backproject


def assert_labels_match_maps(frame, box_slack_m: float) -> None:
    """Every label of a ``SynthFrame`` agrees with its instance, semantic and depth maps.

    Exactly for ids, boxes, pixel counts and classes; every visible pixel, back-projected with
    its depth, lies in its object's 3D box grown by ``box_slack_m`` per side.
    """
    ids = set(np.unique(frame.instance)) - {0}
    assert ids == {o.instance_id for o in frame.objects}
    assert np.all(frame.semantic[frame.instance == 0] == 0)
    for o in frame.objects:
        mask = frame.instance == o.instance_id
        ys, xs = np.nonzero(mask)
        assert o.box_xyxy == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert o.visible_pixels == mask.sum() <= o.footprint_pixels
        assert np.all(frame.semantic[mask] == o.category_id)
        assert o.distance_m == pytest.approx(float(np.median(frame.depth_m[mask])))
        pts = backproject(xs, ys, frame.depth_m[ys, xs], frame.intrinsics)
        local = (pts - np.asarray(o.center_optical)) @ o.rotation_optical
        assert np.all(np.abs(local) <= np.asarray(o.size_m) / 2 + box_slack_m)
