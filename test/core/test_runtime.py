"""The Perceptor end to end on a tiny random-weight DepthSSD: torch and ONNX Runtime parity,
metric depth scaling, memory resets, settings changes, bad input, and each stage on its own."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest
import torch
from tiny_models import build_tiny_model

from depthssd_core.backends.onnxruntime_backend import OnnxRuntimeBackend
from depthssd_core.backends.torch_backend import TorchBackend
from depthssd_core.classes import CLASSES
from depthssd_core.distance import estimate_object_distance, estimate_object_distances
from depthssd_core.export import export_onnx
from depthssd_core.geometry import CameraIntrinsics
from depthssd_core.model import DepthSSD, anchors_for
from depthssd_core.model_info import model_info_from_module
from depthssd_core.postprocess import Detections, postprocess_detections
from depthssd_core.runtime import Perceptor, PerceptorSettings, focal_for_depth, metric_depth

IN_H, IN_W = 96, 160
FRAME_H, FRAME_W = 120, 200
LOW_SCORE = PerceptorSettings(score_threshold=0.02, max_detections=30)


@pytest.fixture(scope="module")
def tiny_model() -> DepthSSD:
    model = build_tiny_model(IN_H, IN_W, seed=0, max_depth_m=200.0)
    # Random init leaves the memory near zero; make M_0 and the state clearly non-trivial so
    # that memory resets are observable.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "memory" in name and p.dim() >= 2:
                p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def tiny_onnx(tiny_model, tmp_path_factory):
    return export_onnx(tiny_model, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random bgra8 frames (a moving bright block on a gradient)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        img = np.zeros((FRAME_H, FRAME_W, 4), np.uint8)
        img[..., 0] = np.linspace(0, 255, FRAME_W, dtype=np.uint8)[None, :]
        img[..., 1] = np.linspace(0, 200, FRAME_H, dtype=np.uint8)[:, None]
        img[..., 2] = rng.integers(0, 255)
        img[30:70, 40 + 5 * k:100 + 5 * k, :3] = 250
        img[..., 3] = 255
        out.append(img)
    return out


INTR = CameraIntrinsics.from_fov(FRAME_W, FRAME_H, 90.0)


def make(model, settings=None, backend=None) -> Perceptor:
    info = model_info_from_module(model)
    return Perceptor(backend or TorchBackend(model, device="cpu"), info,
                     settings=dataclasses.replace(settings or LOW_SCORE))


def test_end_to_end_torch_outputs(tiny_model):
    perceptor = make(tiny_model)
    result = perceptor.process(frames(1)[0], "bgra8", INTR, 10.0)
    assert result.backend == "torch" and result.memory_reset is None
    assert result.depth_m.shape == (FRAME_H, FRAME_W) and result.depth_m.dtype == np.float32
    valid = result.depth_m[np.isfinite(result.depth_m)]
    assert valid.size > 0 and valid.min() >= 0.5 and valid.max() <= 200.0
    assert set(result.latency_ms) == {"preprocess", "inference", "decode", "distance",
                                      "tracking", "total"}
    assert result.latency_ms["total"] >= result.latency_ms["inference"] > 0
    assert 0 < len(result.detections) <= 30
    scores = [d.score for d in result.detections]
    assert scores == sorted(scores, reverse=True)
    for det in result.detections:
        x1, y1, x2, y2 = det.box_xyxy
        assert 0 <= x1 < x2 <= FRAME_W and 0 <= y1 < y2 <= FRAME_H
        assert det.class_name == CLASSES[det.class_index] and det.track_id >= 1
        assert math.isfinite(det.distance_m) and det.distance_sigma_m >= 0
        # The reported point is the box centre back-projected at the distance.
        u, v = (x1 + x2) / 2, (y1 + y2) / 2
        np.testing.assert_allclose(
            det.point_optical,
            [(u - INTR.cx) * det.distance_m / INTR.fx, (v - INTR.cy) * det.distance_m / INTR.fy,
             det.distance_m], rtol=1e-4, atol=1e-4)
        assert det.closing_speed_mps == 0.0 and math.isinf(det.time_to_contact_s)
    assert len({d.track_id for d in result.detections}) == len(result.detections)


def test_metric_depth_follows_the_focal_length(tiny_model):
    """depth_m = depth_c * f_resized / f_c, upsampled: doubling the focal doubles the depth."""
    settings = dataclasses.replace(LOW_SCORE, memory_enabled=False, min_depth_m=1e-3,
                                   max_depth_m=1e6)
    frame = frames(1)[0]
    a = make(tiny_model, settings)
    d1 = a.process(frame, "bgra8", INTR, 0.0).depth_m
    long_focal = dataclasses.replace(INTR, fx=2 * INTR.fx, fy=2 * INTR.fy)
    b = make(tiny_model, settings)
    d2 = b.process(frame, "bgra8", long_focal, 0.0).depth_m
    np.testing.assert_allclose(d2, 2 * d1, rtol=1e-5)
    # And the closed form from the raw network output.
    info = model_info_from_module(tiny_model)
    out = TorchBackend(tiny_model, device="cpu").infer(a.preprocess(frame, "bgra8"),
                                                       info.initial_mem_m, info.initial_mem_s)
    f_in = focal_for_depth(INTR.resized(IN_W, IN_H))
    want = cv2.resize(out["depth_c"][0, 0] * np.float32(f_in / 1000.0), (FRAME_W, FRAME_H),
                      interpolation=cv2.INTER_LINEAR)
    np.testing.assert_allclose(d1, want, rtol=1e-5)


def test_depth_outside_range_is_nan(tiny_model):
    perceptor = make(tiny_model, dataclasses.replace(LOW_SCORE, min_depth_m=1e-3,
                                                     max_depth_m=1e6))
    full = perceptor.process(frames(1)[0], "bgra8", INTR, 0.0).depth_m
    lo, hi = np.percentile(full, [30, 70])
    perceptor = make(tiny_model, dataclasses.replace(LOW_SCORE, min_depth_m=float(lo),
                                                     max_depth_m=float(hi)))
    cut = perceptor.process(frames(1)[0], "bgra8", INTR, 0.0).depth_m
    inside = (full >= lo) & (full <= hi)
    assert np.isnan(cut[~inside]).all()
    np.testing.assert_allclose(cut[inside], full[inside])


def _fresh_result(model, frame, settings=LOW_SCORE):
    return make(model, settings).process(frame, "bgra8", INTR, 0.0)


def _same(a, b) -> bool:
    return np.allclose(a.depth_m, b.depth_m, equal_nan=True, atol=1e-6) and \
        [d.box_xyxy for d in a.detections] == [d.box_xyxy for d in b.detections]


def test_memory_carries_state_and_resets(tiny_model):
    seq = frames(4)
    perceptor = make(tiny_model)
    m0, s0 = perceptor.memory_state
    for k in range(3):
        perceptor.process(seq[k], "bgra8", INTR, 0.05 * k)
    m3, s3 = perceptor.memory_state
    assert not np.allclose(m3, m0) and not np.allclose(s3, s0)
    # With memory the 4th frame differs from a fresh run on it ...
    carried = perceptor.process(seq[3], "bgra8", INTR, 0.15)
    assert carried.memory_reset is None
    fresh = _fresh_result(tiny_model, seq[3])
    assert not _same(carried, fresh)
    # ... a stamp going backwards resets to exactly the fresh result.
    back = perceptor.process(seq[3], "bgra8", INTR, 0.10)
    assert "backwards" in back.memory_reset and _same(back, fresh)
    # A jump beyond reset_gap_s resets.
    perceptor.process(seq[0], "bgra8", INTR, 0.15)
    gap = perceptor.process(seq[3], "bgra8", INTR, 5.0)
    assert "jumped" in gap.memory_reset and _same(gap, fresh)
    # Changed intrinsics reset.
    perceptor.process(seq[0], "bgra8", INTR, 5.05)
    other = dataclasses.replace(INTR, cx=INTR.cx + 3)
    changed = perceptor.process(seq[3], "bgra8", other, 5.1)
    assert "intrinsics" in changed.memory_reset
    # The tracker restarted with the memory: ids count from 1 again.
    assert min(d.track_id for d in changed.detections) == 1
    # reset() restores the initial state at once and is reported on the next frame.
    perceptor.reset()
    m, s = perceptor.memory_state
    np.testing.assert_array_equal(m, m0)
    np.testing.assert_array_equal(s, s0)
    after = perceptor.process(seq[3], "bgra8", INTR, 6.0)
    assert after.memory_reset == "reset() called" and _same(after, fresh)
    assert perceptor.process(seq[0], "bgra8", INTR, 6.05).memory_reset is None


def test_memory_disabled_feeds_the_initial_state(tiny_model):
    seq = frames(3)
    settings = dataclasses.replace(LOW_SCORE, memory_enabled=False)
    perceptor = make(tiny_model, settings)
    for k, frame in enumerate(seq):
        result = perceptor.process(frame, "bgra8", INTR, 0.05 * k)
        assert _same(result, _fresh_result(tiny_model, frame, settings))


def test_settings_change_between_frames(tiny_model):
    seq = frames(3)
    perceptor = make(tiny_model, dataclasses.replace(LOW_SCORE, memory_enabled=False))
    many = perceptor.process(seq[0], "bgra8", INTR, 0.0)
    assert len(many.detections) > 3
    perceptor.settings.max_detections = 3
    assert len(perceptor.process(seq[0], "bgra8", INTR, 0.05).detections) == 3
    keep = many.detections[0].class_name
    perceptor.update_settings(max_detections=30, classes=(keep,))
    only = perceptor.process(seq[0], "bgra8", INTR, 0.1).detections
    assert only and {d.class_name for d in only} == {keep}
    perceptor.settings.score_threshold = 0.999
    assert perceptor.process(seq[0], "bgra8", INTR, 0.15).detections == []
    perceptor.settings.score_threshold = 7.0
    with pytest.raises(ValueError, match="score_threshold"):
        perceptor.process(seq[0], "bgra8", INTR, 0.2)
    with pytest.raises(ValueError, match="unknown classes"):
        perceptor.update_settings(score_threshold=0.1, classes=("unicorn",))


def test_ground_fusion_setting_changes_distances(tiny_model):
    """A camera height that puts the road 10% behind an object's depth pulls its distance."""
    frame = frames(1)[0]
    settings = dataclasses.replace(LOW_SCORE, memory_enabled=False)
    plain = make(tiny_model, settings).process(frame, "bgra8", INTR, 0.0)
    intr_in = INTR.resized(IN_W, IN_H)
    target = next(d for d in plain.detections
                  if intr_in.cy + 5 < d.box_xyxy[3] * IN_H / FRAME_H < IN_H - 2)
    bottom_in = target.box_xyxy[3] * IN_H / FRAME_H
    ground_m = 1.1 * target.distance_m
    height_m = ground_m * (bottom_in - intr_in.cy) / intr_in.fy  # pitch 0 flat road
    fused = make(tiny_model, dataclasses.replace(settings, camera_height_m=height_m,
                                                 camera_pitch_rad=0.0)).process(
        frame, "bgra8", INTR, 0.0)
    assert [d.box_xyxy for d in plain.detections] == [d.box_xyxy for d in fused.detections]
    after = fused.detections[plain.detections.index(target)]
    assert target.distance_m < after.distance_m < ground_m


@pytest.mark.parametrize(("frame", "encoding", "intr", "stamp", "match"), [
    (np.zeros((FRAME_H, FRAME_W, 4), np.uint8), "bgra8", dataclasses.replace(INTR, fx=math.nan),
     0.0, "fx"),
    (np.zeros((FRAME_H, FRAME_W, 4), np.uint8), "bgra8", INTR.resized(100, 60), 0.0,
     "intrinsics are for 100x60"),
    (np.zeros((FRAME_H, FRAME_W, 4), np.uint8), "bgra8", INTR, math.nan, "stamp_s"),
    (np.zeros((FRAME_H, FRAME_W, 3), np.uint8), "bgra8", INTR, 0.0, "channels"),
    (np.zeros((FRAME_H, FRAME_W, 4), np.float32), "bgra8", INTR, 0.0, "dtype"),
    (np.zeros((FRAME_H, FRAME_W, 4), np.uint8), "yuv", INTR, 0.0, "encoding"),
    (np.zeros((0, FRAME_W, 4), np.uint8), "bgra8", INTR, 0.0, "empty"),
])
def test_bad_input_raises_value_error(tiny_model, frame, encoding, intr, stamp, match):
    perceptor = make(tiny_model)
    with pytest.raises(ValueError, match=match):
        perceptor.process(frame, encoding, intr, stamp)


def test_onnxruntime_matches_torch(tiny_model, tiny_onnx):
    """Same detections and depth on both backends over a sequence (memory carried)."""
    seq = frames(3, seed=1)
    p_torch = make(tiny_model)
    p_ort = make(tiny_model, backend=OnnxRuntimeBackend(tiny_onnx, intra_op_threads=1))
    assert p_ort.backend.providers[-1] == "CPUExecutionProvider"
    for k, frame in enumerate(seq):
        a = p_torch.process(frame, "bgra8", INTR, 0.05 * k)
        b = p_ort.process(frame, "bgra8", INTR, 0.05 * k)
        assert b.backend == "onnxruntime"
        np.testing.assert_allclose(b.depth_m, a.depth_m, rtol=1e-3, atol=1e-3)
        assert len(a.detections) == len(b.detections) > 0
        for da, db in zip(a.detections, b.detections, strict=True):
            assert da.class_index == db.class_index and da.track_id == db.track_id
            np.testing.assert_allclose(db.box_xyxy, da.box_xyxy, atol=1e-2)
            assert db.score == pytest.approx(da.score, abs=1e-4)
            assert db.distance_m == pytest.approx(da.distance_m, rel=1e-3)
        np.testing.assert_allclose(p_ort.memory_state[0], p_torch.memory_state[0], atol=1e-4)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_preprocess_matches_the_normalisation_formula(tiny_model, encoding):
    perceptor = make(tiny_model)
    rgb = np.random.default_rng(3).integers(0, 256, size=(IN_H, IN_W, 3), dtype=np.uint8)
    frame = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1], "mono8": rgb[:, :, :1],
             "rgba8": np.dstack([rgb, np.zeros_like(rgb[:, :, :1])]),
             "bgra8": np.dstack([rgb[:, :, ::-1], np.zeros_like(rgb[:, :, :1])])}[encoding]
    want_rgb = np.repeat(rgb[:, :, :1], 3, axis=2) if encoding == "mono8" else rgb
    cfg = tiny_model.cfg
    want = (want_rgb / 255.0 - np.array(cfg.mean)) / np.array(cfg.std)
    got = perceptor.preprocess(np.ascontiguousarray(frame), encoding)
    assert got.shape == (1, 3, IN_H, IN_W) and got.dtype == np.float32
    np.testing.assert_allclose(got[0].transpose(1, 2, 0), want, atol=1e-5)
    # A frame of another size is resized first (bilinear).
    big = cv2.resize(np.ascontiguousarray(frame), (2 * IN_W, 2 * IN_H))
    if big.ndim == 2:
        big = big[:, :, None]
    assert perceptor.preprocess(big, encoding).shape == (1, 3, IN_H, IN_W)


# ------------------------------------------------------------------ the stages one by one


def test_stages_run_one_by_one_give_what_process_gives(tiny_model):
    """preprocess -> infer -> decode -> measure_distances -> track is exactly process()."""
    seq = frames(3, seed=2)
    settings = dataclasses.replace(LOW_SCORE, camera_height_m=1.6, camera_pitch_rad=0.02)
    whole, staged = make(tiny_model, settings), make(tiny_model, settings)
    intr_in = INTR.resized(IN_W, IN_H)
    for k, frame in enumerate(seq):
        want = whole.process(frame, "bgra8", INTR, 0.05 * k)
        outputs = staged.infer(staged.preprocess(frame, "bgra8"))
        decoded = staged.decode(outputs, intr_in, frame.shape[:2])
        distances = staged.measure_distances(decoded.detections, decoded.depth_in, intr_in)
        got = staged.track(decoded.detections, distances, intr_in, frame.shape[:2], 0.05 * k)
        assert repr(got) == repr(want.detections) and len(got) > 0
        np.testing.assert_array_equal(decoded.depth_frame, want.depth_m)
    np.testing.assert_array_equal(staged.memory_state[0], whole.memory_state[0])


def test_infer_feeds_the_memory_and_keeps_the_new_state(tiny_model):
    perceptor = make(tiny_model)
    image = perceptor.preprocess(frames(1)[0], "bgra8")
    m0, s0 = perceptor.memory_state
    first = perceptor.infer(image)
    want = TorchBackend(tiny_model, device="cpu").infer(image, m0, s0)
    for name, value in want.items():
        np.testing.assert_array_equal(first[name], value)
    np.testing.assert_array_equal(perceptor.memory_state[0], first["mem_m_out"])
    second = perceptor.infer(image)  # the same image on the carried state: other outputs
    assert not np.allclose(second["mem_m_out"], first["mem_m_out"])
    perceptor.settings.memory_enabled = False
    fresh = perceptor.infer(image)  # memory off: the initial state again
    np.testing.assert_array_equal(fresh["mem_m_out"], first["mem_m_out"])


def test_decode_is_postprocess_plus_metric_depth(tiny_model):
    perceptor = make(tiny_model, dataclasses.replace(LOW_SCORE, classes=("car", "truck")))
    outputs = perceptor.infer(perceptor.preprocess(frames(1)[0], "bgra8"))
    intr_in = INTR.resized(IN_W, IN_H)
    decoded = perceptor.decode(outputs, intr_in, (FRAME_H, FRAME_W))
    anchors = anchors_for(tiny_model.cfg, IN_H, IN_W)
    want = postprocess_detections(outputs["cls_logits"], outputs["box_regression"], anchors,
                                  (IN_H, IN_W), 0.02, 0.5, 30, 1000, {0, 1})
    np.testing.assert_array_equal(decoded.detections.boxes_xyxy, want.boxes_xyxy)
    assert set(decoded.detections.class_index.tolist()) <= {0, 1}
    ratio = focal_for_depth(intr_in) / tiny_model.cfg.canonical_focal_px
    depth_in, depth_frame = metric_depth(outputs["depth_c"][0, 0], ratio, (IN_H, IN_W),
                                         (FRAME_H, FRAME_W), tiny_model.cfg.min_depth_m,
                                         tiny_model.cfg.max_depth_m)
    np.testing.assert_array_equal(decoded.depth_in, depth_in)
    np.testing.assert_array_equal(decoded.depth_frame, depth_frame)
    assert decoded.depth_in.shape == (IN_H, IN_W) and depth_frame.shape == (FRAME_H, FRAME_W)


def test_metric_depth_closed_form_and_range():
    depth_c = np.array([[10.0, 20.0], [30.0, 40.0]], np.float32)
    same, also_same = metric_depth(depth_c, 0.5, (2, 2), (2, 2), 6.0, 100.0)
    assert same is also_same  # one map when the frame is the network input size
    # The upsampling runs in inverse depth: 1 / (1 / x) is x to float32 rounding (1 ulp).
    np.testing.assert_allclose(same, [[np.nan, 10.0], [15.0, 20.0]], rtol=2e-7)  # 5 m: NaN
    small, big = metric_depth(depth_c, 1.0, (2, 2), (4, 4), 1.0, 100.0)
    np.testing.assert_allclose(small, depth_c, rtol=2e-7)  # at the same size: the map
    assert big.shape == (4, 4) and big.min() >= 10.0 and big.max() <= 40.0


def test_measure_distances_is_the_per_box_estimate(tiny_model):
    """Each detection gets estimate_object_distance of its own box; traffic lights and signs
    get no ground estimate."""
    settings = dataclasses.replace(LOW_SCORE, camera_height_m=1.6, camera_pitch_rad=0.02)
    perceptor = make(tiny_model, settings)
    intr_in = INTR.resized(IN_W, IN_H)
    decoded = perceptor.decode(perceptor.infer(perceptor.preprocess(frames(1)[0], "bgra8")),
                               intr_in, (FRAME_H, FRAME_W))
    dets = decoded.detections
    got = perceptor.measure_distances(dets, decoded.depth_in, intr_in)
    assert len(got) == len(dets) > 0
    for box, cls, dist in zip(dets.boxes_xyxy, dets.class_index, got, strict=True):
        on_ground = CLASSES[int(cls)] not in ("traffic_light", "traffic_sign")
        want = estimate_object_distance(decoded.depth_in, box, intr_in, 1.6, 0.02, on_ground)
        # repr is exact for floats and equal for NaNs: bit-for-bit the same estimate.
        assert repr(dist) == repr(want)


def test_track_gives_frame_pixels_ids_and_the_smoothed_point(tiny_model):
    perceptor = make(tiny_model)
    intr_in = INTR.resized(IN_W, IN_H)
    boxes = np.array([[10, 20, 50, 60], [100, 10, 150, 80]], np.float32)
    dets = Detections(boxes, np.array([0.9, 0.8], np.float32), np.array([0, 5]))
    distances = estimate_object_distances(np.full((IN_H, IN_W), 12.0, np.float32), boxes,
                                          intr_in)
    out = perceptor.track(dets, distances, intr_in, (FRAME_H, FRAME_W), 1.0)
    sx, sy = FRAME_W / IN_W, FRAME_H / IN_H
    assert [d.track_id for d in out] == [1, 2]
    assert [d.class_name for d in out] == ["car", "pedestrian"]
    np.testing.assert_allclose(out[0].box_xyxy, [10 * sx, 20 * sy, 50 * sx, 60 * sy], rtol=1e-6)
    for det, box in zip(out, boxes, strict=True):
        assert det.distance_m == pytest.approx(12.0) and det.measured_distance_m == 12.0
        u, v = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        np.testing.assert_allclose(det.point_optical, [(u - intr_in.cx) * 12.0 / intr_in.fx,
                                                       (v - intr_in.cy) * 12.0 / intr_in.fy,
                                                       12.0], rtol=1e-6)
    # The same boxes a frame later keep their ids.
    again = perceptor.track(dets, distances, intr_in, (FRAME_H, FRAME_W), 1.05)
    assert [d.track_id for d in again] == [1, 2]
    empty = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                       np.zeros(0, np.int64))
    assert perceptor.track(empty, [], intr_in, (FRAME_H, FRAME_W), 1.1) == []


@pytest.mark.parametrize("encoding", ["bgra8", "mono8"])
def test_preprocess_reads_frames_with_padded_rows(tiny_model, encoding):
    """A ROS image whose step exceeds width * channels arrives as a view with strided rows."""
    perceptor = make(tiny_model)
    channels = 4 if encoding == "bgra8" else 1
    buffer = np.random.default_rng(5).integers(0, 256, size=(IN_H, IN_W + 7, channels),
                                               dtype=np.uint8)
    view = buffer[:, :IN_W]
    assert not view.flags.c_contiguous
    np.testing.assert_array_equal(perceptor.preprocess(view, encoding),
                                  perceptor.preprocess(np.ascontiguousarray(view), encoding))


def test_depth_is_upsampled_in_inverse_depth():
    """A level road's inverse depth is linear in the row, so the upsampled map is exact on it;
    a sky sample (1000 m) beside a 10 m one does not make its neighbour hundreds of metres."""
    from depthssd_core.runtime import upsample_depth

    rows_low = np.arange(8) * 4 + 1.5  # centres of 4-row cells in fine-pixel units
    low = np.repeat((160.0 / (rows_low + 3.0))[:, None], 4, axis=1).astype(np.float32)
    up = upsample_depth(low, 16, 32)
    fine_rows = np.arange(32) - 0.0
    expected = 160.0 / (fine_rows + 3.0)
    np.testing.assert_allclose(up[2:30, 5], expected[2:30], rtol=1e-4)
    edge = upsample_depth(np.array([[10.0, 1000.0]], np.float32), 4, 1)
    assert edge[0, 1] < 20.0  # in metres it would be 257.5
