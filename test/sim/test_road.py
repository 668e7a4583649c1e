"""Road geometry and ground markings of the synthetic world against closed forms."""

from __future__ import annotations

import math

import numpy as np

from depthssd_core.geometry import flat_ground_depth
from depthssd_sim import Road, Scene, render_scene


def test_lateral_offset_inverts_road_coordinates_on_curves():
    road = Road(amplitudes_m=(15.0, 6.0), wavenumbers_per_m=(2 * math.pi / 400,
                                                            2 * math.pi / 270),
                phases_rad=(0.3, 1.1))
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 500.0, 2000)
    d = rng.uniform(-15.0, 15.0, 2000)
    wx, wy, heading = road.to_world(x, d)
    got = road.lateral(wx.astype(np.float32), wy.astype(np.float32))
    # First-order inversion plus a 0.1 m centreline table: centimetres on tight curves.
    err = np.abs(got - d)
    assert err[np.abs(d) < 8].max() < 0.025 and err.max() < 0.05
    # Heading is the centreline's slope angle.
    y0, _ = road.center_y(x - 1e-4)
    y1, _ = road.center_y(x + 1e-4)
    np.testing.assert_allclose(np.tan(heading), (y1 - y0) / 2e-4, atol=1e-6)


def test_straight_road_lateral_is_world_y():
    road = Road()
    y = np.linspace(-10, 10, 7, dtype=np.float32)
    np.testing.assert_array_equal(road.lateral(np.zeros_like(y), y), y)


def test_lane_markings_sit_at_their_lateral_offsets():
    """On an empty straight road the painted lines appear where pinhole geometry puts them."""
    road = Road(lanes_right=2, lanes_left=2, lane_width_m=3.5, dashed_centre=False)
    scene = Scene(width=640, height=360, fov_deg=90.0, camera_height_m=1.6, camera_y_m=-1.75,
                  road=road)
    frame = render_scene(scene)
    intr = frame.intrinsics
    row = 220
    z = float(flat_ground_depth(row, 1.6, 0.0, intr.fy, intr.cy))

    def column(world_y):  # optical x = -(y - camera_y)
        return round(intr.cx - intr.fx * (world_y - scene.camera_y_m) / z)

    brightness = frame.rgb[row].astype(float).mean(axis=1)
    asphalt = brightness[column(-1.75)]  # middle of the ego lane
    right_edge = brightness[column(-7.0)]  # solid white edge line
    centre = frame.rgb[row, column(0.0)].astype(float)  # solid yellow centre line
    assert right_edge > asphalt + 60
    assert centre[0] > asphalt + 60 and centre[2] < centre[0] - 60  # yellow: red high, blue low
    # Beyond the curb and sidewalk lies terrain: a different colour from the asphalt.
    assert np.abs(frame.rgb[row, column(-7.0 - 0.25 - 3.0 - 1.0)].astype(float)
                  - frame.rgb[row, column(-1.75)]).max() > 20


def test_zebra_crossing_is_striped():
    x_m = 20.0
    road = Road(crossings_x_m=(x_m,))
    frame = render_scene(Scene(width=320, height=180, fov_deg=60.0, camera_height_m=2.0,
                               road=road))
    intr = frame.intrinsics
    # The row that sees the crossing's middle straight ahead.
    row = round(intr.cy + intr.fy * 2.0 / x_m)
    values = frame.rgb[row, :, 0].astype(float)
    left, right = int(intr.cx - intr.fx * 6 / x_m), int(intr.cx + intr.fx * 6 / x_m)
    stripes = values[left:right] > values[left:right].mean()
    # 0.6 m stripes every 1.2 m across 12 m of road: about ten light/dark alternations.
    assert 14 <= np.count_nonzero(np.diff(stripes.astype(int))) <= 24


def test_side_street_replaces_curb_and_sidewalk_over_its_width():
    from depthssd_sim.road import (
        GROUND_ASPHALT,
        GROUND_ASPHALT_2,
        GROUND_CURB,
        GROUND_SIDEWALK,
        GROUND_TERRAIN,
        GROUND_WHITE,
        SideStreet,
    )

    road = Road(lanes_right=2, lanes_left=1, lane_width_m=3.5, sidewalk_m=3.0, verge_m=1.5,
                side_streets=(SideStreet(50.0, 5.0, right=True, left=False),))
    d = np.array([-10.0, -8.0, -7.1, -5.0], np.float32)  # sidewalk, verge, curb, lane
    for x, expected in ((35.0, [GROUND_SIDEWALK, GROUND_TERRAIN, GROUND_CURB, GROUND_ASPHALT]),
                        (50.0, [GROUND_ASPHALT_2] * 3 + [GROUND_ASPHALT])):
        mat, _ = road.paint_ground(np.full(4, x, np.float32), d)
        assert mat.tolist() == expected
    # The left side has no street; a stop line crosses the ego's lanes before the junction.
    mat, _ = road.paint_ground(np.array([50.0, 43.5], np.float32),
                               np.array([3.6, -3.0], np.float32))
    assert mat.tolist() == [GROUND_CURB, GROUND_WHITE]
    assert road.side_street_at(40.0, 46.0, -1.0) and not road.side_street_at(40.0, 46.0, 1.0)


def test_centre_line_styles():
    from depthssd_sim.road import GROUND_ASPHALT, GROUND_YELLOW

    d = np.array([0.0, 0.135, -0.135], np.float32)
    x = np.zeros(3, np.float32)
    solid, _ = Road(centre_style="solid").paint_ground(x, d)
    double, _ = Road(centre_style="double").paint_ground(x, d)
    none, _ = Road(centre_style="none").paint_ground(x, d)
    assert solid.tolist() == [GROUND_YELLOW, GROUND_ASPHALT, GROUND_ASPHALT]
    assert double.tolist() == [GROUND_ASPHALT, GROUND_YELLOW, GROUND_YELLOW]
    assert none.tolist() == [GROUND_ASPHALT] * 3
