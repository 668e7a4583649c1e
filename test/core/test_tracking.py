"""Tracker id stability, track birth/death and the Kalman distance filter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthssd_core.boxes import box_iou
from depthssd_core.tracking import Tracker, TrackerSettings, greedy_match


def test_box_iou_and_greedy_match():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [100, 100, 110, 110]], float)
    iou = box_iou(a, b)
    np.testing.assert_allclose(iou, [[50 / 150, 0, 0], [0, 1, 0]])
    assert sorted(greedy_match(iou, 0.3)) == [(0, 0), (1, 1)]
    assert greedy_match(iou, 0.5) == [(1, 1)]


def test_ids_stable_over_moving_boxes_with_a_missed_frame():
    tracker = Tracker(TrackerSettings(max_misses=2))
    ids_a, ids_b = [], []
    for k in range(12):
        t = 0.05 * k
        car = np.array([100 + 12 * k, 100, 160 + 12 * k, 140], float)  # 12 px/frame right
        ped = np.array([400 - 6 * k, 90, 420 - 6 * k, 150], float)
        boxes, classes = [car], [0]
        if k != 6:  # the pedestrian is missed in frame 6
            boxes.append(ped)
            classes.append(5)
        states = tracker.update(np.array(boxes), np.array(classes), np.full(len(boxes), 20.0),
                                np.full(len(boxes), 0.5), t)
        ids_a.append(states[0].track_id)
        if k != 6:
            ids_b.append(states[1].track_id)
    assert len(set(ids_a)) == 1 and len(set(ids_b)) == 1 and ids_a[0] != ids_b[0]
    # A box of another class at the same place does not steal the car's id.
    k = 12
    states = tracker.update(np.array([[100 + 12 * k, 100, 160 + 12 * k, 140]], float),
                            np.array([1]), np.array([20.0]), np.array([0.5]), 0.6)
    assert states[0].track_id not in (ids_a[0], ids_b[0])


def test_track_death_after_max_misses():
    tracker = Tracker(TrackerSettings(max_misses=2))
    box = np.array([[10, 10, 50, 50]], float)
    first = tracker.update(box, np.array([0]), np.array([10.0]), np.array([0.1]), 0.0)[0]
    for i in range(1, 4):
        tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros(0), 0.1 * i)
    assert tracker.num_tracks == 0
    again = tracker.update(box, np.array([0]), np.array([10.0]), np.array([0.1]), 0.5)[0]
    assert again.track_id != first.track_id
    tracker.reset()
    assert tracker.update(box, np.array([0]), np.array([10.0]), np.array([0.1]),
                          0.0)[0].track_id == 1


def test_kalman_closing_speed_and_time_to_contact():
    rng = np.random.default_rng(0)
    tracker = Tracker()
    speed = 10.0  # m/s, approaching
    dt = 0.05
    state = None
    for k in range(40):
        t = k * dt
        d = 60.0 - speed * t
        meas = d + rng.normal(0, 0.3)
        state = tracker.update(np.array([[300, 150, 340, 190]], float), np.array([0]),
                               np.array([meas]), np.array([0.3]), t)[0]
        if k == 0:
            assert state.closing_speed_mps == 0.0 and math.isinf(state.time_to_contact_s)
    d_now = 60.0 - speed * 39 * dt
    assert state.closing_speed_mps == pytest.approx(speed, abs=1.0)
    assert state.distance_m == pytest.approx(d_now, abs=0.4)
    assert state.time_to_contact_s == pytest.approx(d_now / speed, rel=0.12)
    assert state.distance_sigma_m < 0.3  # smoothing beats a single measurement


def test_receding_object_has_infinite_ttc_and_negative_closing_speed():
    tracker = Tracker()
    for k in range(20):
        state = tracker.update(np.array([[300, 150, 340, 190]], float), np.array([0]),
                               np.array([20.0 + 5.0 * 0.05 * k]), np.array([0.1]), 0.05 * k)[0]
    assert state.closing_speed_mps == pytest.approx(-5.0, abs=0.5)
    assert math.isinf(state.time_to_contact_s)


def test_stamp_going_backwards_raises():
    tracker = Tracker()
    tracker.update(np.array([[0, 0, 5, 5]], float), np.array([0]), np.array([5.0]),
                   np.array([0.1]), 1.0)
    with pytest.raises(ValueError, match="reset"):
        tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros(0), 0.5)


def test_kalman_matches_the_matrix_form():
    """The scalar filter equals the textbook matrix Kalman filter (F, Q, H = [1, 0])."""
    settings = TrackerSettings(gate_sigmas=1e9)
    tracker = Tracker(settings)
    rng = np.random.default_rng(5)
    stamps = np.cumsum(rng.uniform(0.03, 0.12, size=15))
    meas = 30 - 4 * stamps + rng.normal(0, 0.4, size=15)
    sig = rng.uniform(0.1, 0.6, size=15)
    x = p = None
    q = settings.accel_sigma_mps2 ** 2
    for k, (t, z, s) in enumerate(zip(stamps, meas, sig, strict=True)):
        state = tracker.update(np.array([[10, 10, 50, 50]], float), np.array([0]),
                               np.array([z]), np.array([s]), float(t))[0]
        r = max(s, settings.min_meas_sigma_m) ** 2
        if k == 0:
            x, p = np.array([z, 0.0]), np.diag([r, settings.init_rate_sigma_mps ** 2])
        else:
            dt = t - stamps[k - 1]
            f = np.array([[1, dt], [0, 1]])
            x = f @ x
            p = f @ p @ f.T + q * np.array([[dt ** 4 / 4, dt ** 3 / 2], [dt ** 3 / 2, dt ** 2]])
            h = np.array([[1.0, 0.0]])
            gain = p @ h.T / (h @ p @ h.T + r)
            x = x + (gain * (z - x[0])).ravel()
            p = (np.eye(2) - gain @ h) @ p
        assert state.distance_m == pytest.approx(x[0], rel=1e-9)
        assert state.distance_sigma_m == pytest.approx(math.sqrt(p[0, 0]), rel=1e-9)
        if k >= 2:
            assert state.closing_speed_mps == pytest.approx(-x[1], rel=1e-9, abs=1e-12)


def test_one_matrix_association_equals_per_class_greedy_matching():
    """All classes matched in one masked IoU matrix pick the pairs that greedy matching class
    by class picks, ties included (duplicated boxes give exactly equal IoUs)."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        n = 14
        xy = rng.uniform(0, 300, (n, 2))
        first = np.concatenate([xy, xy + rng.uniform(10, 60, (n, 2))], axis=1)
        first[1] = first[0]  # a duplicate: equal IoUs against everything
        classes = rng.integers(0, 3, n)
        second = first + rng.normal(0, 6, first.shape)
        second[3] = second[2]
        tracker = Tracker(TrackerSettings(iou_threshold=0.2))
        ids_first = [s.track_id for s in tracker.update(first, classes, np.full(n, 10.0),
                                                         np.full(n, 0.5), 0.0)]
        # First update: no velocity yet, so the predicted boxes are the first boxes.
        want = {}
        for cls in np.unique(classes):
            idx = np.flatnonzero(classes == cls)
            for r, c in greedy_match(box_iou(first[idx], second[idx]), 0.2):
                want[int(idx[c])] = ids_first[int(idx[r])]
        got = [s.track_id for s in tracker.update(second, classes, np.full(n, 10.0),
                                                   np.full(n, 0.5), 0.05)]
        for k in range(n):
            assert got[k] == want.get(k, got[k]) and (k in want or got[k] > n), k
