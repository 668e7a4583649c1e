"""Anchors: torch-free sizes equal the real feature maps; boxes match torchvision's SSD rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from depthssd_core.config import ModelConfig
from depthssd_core.model import anchors_for, anchors_per_location, build_model, feature_sizes
from depthssd_core.model.anchors import anchor_scales

SIZES = [(360, 640), (384, 640), (300, 500), (192, 320), (97, 131)]


@pytest.mark.parametrize(("height", "width"), SIZES)
def test_feature_sizes_equal_the_real_feature_maps(model, height, width):
    captured = {}
    hooks = [
        model.neck.register_forward_hook(lambda m, i, o: captured.update(levels=o[0])),
        model.backbone.register_forward_hook(lambda m, i, o: captured.update(stride4=o[0])),
    ]
    try:
        with torch.no_grad():
            cls_logits, _, depth_c, _, _ = model(
                torch.zeros(1, 3, height, width), *model.initial_state(1)
            )
    finally:
        for hook in hooks:
            hook.remove()
    real = [tuple(f.shape[-2:]) for f in captured["levels"]]
    assert real == feature_sizes(model.cfg, height, width)
    assert cls_logits.shape[1] == anchors_for(model.cfg, height, width).shape[0]
    assert tuple(captured["stride4"].shape[-2:]) == tuple(depth_c.shape[-2:])


def test_square_input_matches_torchvision_default_boxes():
    cfg = ModelConfig()
    size = 320
    sizes = feature_sizes(cfg, size, size)
    k = cfg.num_detection_levels
    gen = DefaultBoxGenerator(
        [list(cfg.anchor_aspect_ratios)] * k,
        min_ratio=cfg.anchor_min_ratio,
        max_ratio=cfg.anchor_max_ratio,
        clip=cfg.anchor_clip,
    )
    images = ImageList(torch.zeros(1, 3, size, size), [(size, size)])
    maps = [torch.zeros(1, 1, h, w) for h, w in sizes]
    expected = gen(images, maps)[0].numpy()
    ours = anchors_for(cfg, size, size)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-3)
    assert gen.num_anchors_per_location() == [anchors_per_location(cfg)] * k


def test_non_square_boxes_keep_their_aspect_ratio_in_pixels():
    cfg = ModelConfig()
    boxes = anchors_for(cfg, 360, 640)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    first = boxes[:6]
    # Cell (0, 0) of the stride-8 level is centred at (4, 4); its first box is square,
    # anchor_min_ratio * min(H, W) pixels wide.
    np.testing.assert_allclose((first[:, :2] + first[:, 2:]) / 2, 4.0, atol=1e-5)
    side = cfg.anchor_min_ratio * 360
    np.testing.assert_allclose([w[0], h[0]], [side, side], rtol=1e-6)
    np.testing.assert_allclose(w[2] / h[2], 2.0, rtol=1e-5)
    np.testing.assert_allclose(w[4] / h[4], 3.0, rtol=1e-5)
    # Clipping never lets a box be larger than the image.
    assert (w <= 640 + 1e-3).all() and (h <= 360 + 1e-3).all()
    # Centres of the last (coarsest) level cover the image symmetrically.
    rows, cols = feature_sizes(cfg, 360, 640)[-1]
    last = boxes[-rows * cols * 6 :]
    centres = (last[:, :2] + last[:, 2:]) / 2
    np.testing.assert_allclose(centres.min(0) + centres.max(0), [640, 360], atol=1e-3)


def test_model_anchors_equal_the_plain_function(model):
    for height, width in SIZES[:3]:
        np.testing.assert_array_equal(
            model.anchors(height, width).numpy(), anchors_for(model.cfg, height, width)
        )


def test_box_coder_round_trip_on_our_anchors():
    anchors = torch.from_numpy(anchors_for(ModelConfig(), 192, 320))
    coder = det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    gen = torch.Generator().manual_seed(0)
    targets = anchors + torch.randn(anchors.shape, generator=gen) * 3
    targets[:, 2:] = torch.maximum(targets[:, 2:], targets[:, :2] + 1)
    codes = coder.encode_single(targets, anchors)
    torch.testing.assert_close(coder.decode_single(codes, anchors), targets, atol=1e-3, rtol=0)


def test_more_levels_more_anchors_and_bad_size():
    cfg = dataclasses.replace(ModelConfig(), extra_levels=3)
    assert len(feature_sizes(cfg, 360, 640)) == 6
    with pytest.raises(ValueError, match="positive"):
        anchors_for(cfg, 0, 640)


def test_geometric_spacing_matches_torchvision_with_explicit_scales():
    cfg = ModelConfig(anchor_spacing="geometric", anchor_min_ratio=0.04, anchor_max_ratio=0.95)
    scales = anchor_scales(cfg)
    k = cfg.num_detection_levels
    # A constant factor between neighbouring levels, from min to max.
    factors = np.array(scales[1:k]) / np.array(scales[: k - 1])
    np.testing.assert_allclose(factors, (0.95 / 0.04) ** (1 / (k - 1)), rtol=1e-9)
    assert scales[0] == 0.04 and abs(scales[k - 1] - 0.95) < 1e-12
    size = 320
    gen = DefaultBoxGenerator([list(cfg.anchor_aspect_ratios)] * k, scales=scales,
                              clip=cfg.anchor_clip)
    images = ImageList(torch.zeros(1, 3, size, size), [(size, size)])
    maps = [torch.zeros(1, 1, h, w) for h, w in feature_sizes(cfg, size, size)]
    np.testing.assert_allclose(anchors_for(cfg, size, size), gen(images, maps)[0].numpy(),
                               atol=1e-3)


def test_unknown_anchor_spacing_is_rejected_by_name():
    with pytest.raises(ValueError, match="anchor_spacing"):
        ModelConfig(anchor_spacing="log")


def test_stride_centres_give_a_crop_the_full_inputs_anchors():
    """With ``anchor_centres: stride`` and the full input's reference length, a 320x180 crop
    whose origin sits on the coarsest stride has exactly the 640x360 anchors of that place,
    level by level (shifted by the crop origin); ``spread`` centres do not (360 / 23 rows =
    15.65 px at stride 16, 180 / 12 = 15 px)."""
    cfg = ModelConfig(input_width=640, input_height=360, anchor_centres="stride",
                      anchor_clip=False)
    full = anchors_for(cfg, 360, 640)
    crop = anchors_for(cfg, 180, 320, reference_px=360)
    ox, oy = 128, 128  # a multiple of the coarsest stride (128)
    per_loc = anchors_per_location(cfg)
    start_f = start_c = 0
    for (rf, cf), (rc, cc), stride in zip(feature_sizes(cfg, 360, 640),
                                          feature_sizes(cfg, 180, 320),
                                          cfg.detection_strides, strict=True):
        f = full[start_f:start_f + rf * cf * per_loc].reshape(rf, cf, per_loc, 4)
        c = crop[start_c:start_c + rc * cc * per_loc].reshape(rc, cc, per_loc, 4)
        dy, dx = oy // stride, ox // stride
        rows, cols = min(rc, rf - dy), min(cc, cf - dx)
        np.testing.assert_allclose(c[:rows, :cols] + [ox, oy, ox, oy],
                                   f[dy:dy + rows, dx:dx + cols], atol=1e-3)
        start_f += rf * cf * per_loc
        start_c += rc * cc * per_loc
    # The reference length sets the sizes: without it the crop's anchors are half as large.
    half = anchors_for(cfg, 180, 320)
    np.testing.assert_allclose((half[:, 2] - half[:, 0]) * 2, crop[:, 2] - crop[:, 0],
                               rtol=1e-5)
    spread = dataclasses.replace(cfg, anchor_centres="spread")
    a, b = anchors_for(spread, 360, 640), anchors_for(spread, 180, 320, reference_px=360)
    level0 = 45 * 80 * per_loc
    level1_full = a[level0:level0 + 23 * 40 * per_loc].reshape(23, 40, per_loc, 4)
    level1_crop = b[23 * 40 * per_loc:23 * 40 * per_loc + 12 * 20 * per_loc].reshape(
        12, 20, per_loc, 4)
    assert not np.allclose(level1_crop[:, :, 0, 1] + oy, level1_full[8:20, 8:28, 0, 1])
    with pytest.raises(ValueError, match="anchor_centres"):
        ModelConfig(anchor_centres="middle")
    # A stride-centred model's own anchors at its input size (what the runtime uses).
    model = build_model(cfg)
    torch.testing.assert_close(model.anchors(360, 640), torch.from_numpy(full))
