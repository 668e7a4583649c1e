"""Road geometry of the synthetic world: a gently curving centreline with lanes and sidewalks.

The centreline is ``y = sum_i A_i sin(k_i x + phi_i)`` in the world (x forward, y left), so a
zero amplitude gives a straight road. Positions are given in road coordinates (x, d): ``d`` is
the signed lateral offset to the left of the centreline along its normal. The ground painter
inverts this to first order, ``d = (y - y_c(x)) cos(theta(x))``, which is exact for straight
roads and off by well under a centimetre for the curvatures drawn here.

Lanes with the ego's direction of travel lie right of the centreline (d < 0), oncoming lanes
left of it. Outside the driving lanes come an optional parking strip, the curb and sidewalk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Palette indices of ground materials (the palette of every sequence starts with these).
GROUND_TERRAIN = 0
GROUND_ASPHALT = 1
GROUND_WHITE = 2
GROUND_YELLOW = 3
GROUND_SIDEWALK = 4
GROUND_CURB = 5
SKY = 6
FIRST_FREE_PAINT = 8

_LINE_HALF_M = 0.075  # painted lines are 15 cm wide
_DASH_PERIOD_M = 9.0
_DASH_ON = 0.33
_CROSSING_HALF_M = 2.0  # zebra crossings are 4 m long along the road
_CURB_M = 0.25


@dataclass(frozen=True)
class Road:
    """Lane layout and centreline of one sequence's road.

    Attributes:
        amplitudes_m: amplitudes of the centreline's sine terms (empty = straight).
        wavenumbers_per_m: their wavenumbers ``k = 2 pi / wavelength``.
        phases_rad: their phases.
        lanes_right: lanes in the ego's direction (right of the centreline).
        lanes_left: oncoming lanes.
        lane_width_m: width of one lane.
        parking_m: width of the parking strip outside the outer lanes (0 = none).
        sidewalk_m: sidewalk width outside the curb.
        crossings_x_m: x of zebra crossings.
        dashed_centre: whether the centre line is dashed white instead of solid yellow.
    """

    amplitudes_m: tuple[float, ...] = ()
    wavenumbers_per_m: tuple[float, ...] = ()
    phases_rad: tuple[float, ...] = ()
    lanes_right: int = 2
    lanes_left: int = 2
    lane_width_m: float = 3.5
    parking_m: float = 0.0
    sidewalk_m: float = 3.0
    crossings_x_m: tuple[float, ...] = ()
    dashed_centre: bool = False

    @property
    def right_edge_m(self) -> float:
        """Lateral offset (negative) of the right curb."""
        return -(self.lanes_right * self.lane_width_m + self.parking_m)

    @property
    def left_edge_m(self) -> float:
        """Lateral offset of the left curb."""
        return self.lanes_left * self.lane_width_m + self.parking_m

    def lane_center_m(self, lane: int) -> float:
        """Lateral offset of lane ``lane``: 0.. for the ego direction, -1, -2.. for oncoming."""
        if lane >= 0:
            return -(lane + 0.5) * self.lane_width_m
        return (-lane - 0.5) * self.lane_width_m

    def center_y(self, x: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Centreline y and heading (radians) at world x."""
        x = np.asarray(x, dtype=np.float64)
        y = np.zeros_like(x)
        slope = np.zeros_like(x)
        for a, k, phi in zip(self.amplitudes_m, self.wavenumbers_per_m, self.phases_rad,
                             strict=True):
            y = y + a * np.sin(k * x + phi)
            slope = slope + a * k * np.cos(k * x + phi)
        return y, np.arctan(slope)

    def to_world(self, x: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray]:
        """World (x, y) and road heading of road coordinates (x along, d to the left)."""
        yc, theta = self.center_y(x)
        return x - d * np.sin(theta), yc + d * np.cos(theta), theta

    def lateral(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Signed lateral offset d of world points (float32 arrays in, float32 out)."""
        if not self.amplitudes_m:
            return y
        yc = np.zeros_like(x)
        slope = np.zeros_like(x)
        for a, k, phi in zip(self.amplitudes_m, self.wavenumbers_per_m, self.phases_rad,
                             strict=True):
            arg = x * np.float32(k) + np.float32(phi)
            yc += np.float32(a) * np.sin(arg)
            slope += np.float32(a * k) * np.cos(arg)
        return (y - yc) / np.sqrt(np.float32(1.0) + slope * slope)

    def paint_ground(self, x: np.ndarray, y: np.ndarray,
                     crossings_x_m: tuple[float, ...] | None = None) -> tuple[np.ndarray, None]:
        """Ground material palette index of world points (see the ``GROUND_*`` constants).

        Args:
            x: world x of the points (float32 array).
            y: world y of the points (same shape).
            crossings_x_m: the crossings to draw (default: all); pass the nearby ones only to
                save time.
        """
        d = self.lateral(x, y)
        right, left = np.float32(self.right_edge_m), np.float32(self.left_edge_m)
        on_road = (d > right) & (d < left)
        walk_r = np.float32(self.right_edge_m - _CURB_M - self.sidewalk_m)
        walk_l = np.float32(self.left_edge_m + _CURB_M + self.sidewalk_m)
        mat = np.where(on_road, np.uint16(GROUND_ASPHALT), np.uint16(GROUND_TERRAIN))
        mat[(d > walk_r) & (d < walk_l) & ~on_road] = GROUND_SIDEWALK
        curb = ((d <= right) & (d > right - _CURB_M)) | ((d >= left) & (d < left + _CURB_M))
        mat[curb] = GROUND_CURB
        # Lane lines: offset measured from the right edge of the driving lanes in lane widths.
        drive_right = -self.lanes_right * self.lane_width_m
        lane_pos = (d - np.float32(drive_right)) / np.float32(self.lane_width_m)
        k = np.rint(lane_pos)
        near_line = np.abs(lane_pos - k) < np.float32(_LINE_HALF_M / self.lane_width_m)
        n_lanes = self.lanes_right + self.lanes_left
        near_line &= (k >= 0) & (k <= n_lanes)
        dash_on = np.mod(x, np.float32(_DASH_PERIOD_M)) < np.float32(_DASH_PERIOD_M * _DASH_ON)
        edge = (k == 0) | (k == n_lanes)
        centre = k == self.lanes_right
        solid = edge | (centre & ~np.bool_(self.dashed_centre))
        mat[near_line & (solid | dash_on)] = GROUND_WHITE
        if not self.dashed_centre and self.lanes_left > 0:
            mat[near_line & centre] = GROUND_YELLOW
        for xc in self.crossings_x_m if crossings_x_m is None else crossings_x_m:
            band = np.abs(x - np.float32(xc)) < np.float32(_CROSSING_HALF_M)
            if not np.any(band):
                continue
            stripe = np.mod(d, np.float32(1.2)) < np.float32(0.6)
            mat[band & on_road & stripe] = GROUND_WHITE
        return mat, None
