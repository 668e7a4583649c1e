"""Road geometry of the synthetic world: a curving centreline with lanes, sidewalks, junctions.

The centreline is ``y = sum_i A_i sin(k_i x + phi_i)`` in the world (x forward, y left), so a
zero amplitude gives a straight road. Positions are given in road coordinates (x, d): ``d`` is
the signed lateral offset to the left of the centreline along its normal. The ground painter
inverts this to first order, ``d = (y - y_c(x)) cos(theta(x))``, which is exact for straight
roads and off by a few centimetres at most on the tightest curves drawn here (lane lines are
15 cm wide).

Lanes with the ego's direction of travel lie right of the centreline (d < 0), oncoming lanes
left of it. Outside the driving lanes come an optional parking strip, the curb, an optional
grass verge and the sidewalk. At a junction a side street leaves the road at right angles
(one side or both): its asphalt replaces curb, verge and sidewalk over its width.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

# Ground materials: palette indices of the first palette entries of every sequence.
GROUND_TERRAIN = 0
GROUND_ASPHALT = 1
GROUND_WHITE = 2
GROUND_YELLOW = 3
GROUND_SIDEWALK = 4
GROUND_CURB = 5
GROUND_LANE_PAINT = 6
"""Coloured surface of a bus or bike lane (red, green or blue paint)."""
GROUND_ASPHALT_2 = 7
"""Asphalt of side streets (a different batch: another shade and texture)."""
NUM_GROUND = 8

CURB_M = 0.25
_LINE_HALF_M = 0.075  # painted lines are 15 cm wide
_DOUBLE_GAP_M = 0.12  # gap between the two lines of a double centre line
_DASH_PERIOD_M = 9.0
_DASH_ON = 0.33
_CROSSING_HALF_M = 2.0  # zebra crossings are 4 m long along the road
_STOP_LINE_M = 0.4
_LUT_STEP_M = 0.02  # lateral resolution of the material tables
_DASH_BIT = 128  # flag of the material table: a dashed line may be painted here
_TABLE_STEP_M = 0.1  # spacing of the tabulated centreline

CENTRE_STYLES = ("solid", "double", "dashed", "none")


@dataclass(frozen=True)
class SideStreet:
    """A side street leaving the road at a junction.

    Attributes:
        x_m: road x of its centreline.
        half_width_m: half its width (curb to curb).
        right: whether it leaves to the right (d < 0).
        left: whether it leaves to the left.
    """

    x_m: float
    half_width_m: float
    right: bool = True
    left: bool = True


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
        sidewalk_m: sidewalk width.
        crossings_x_m: x of zebra crossings.
        dashed_centre: the centre line is dashed white (``centre_style`` "dashed").
        verge_m: grass strip between the curb and the sidewalk (0 = none).
        centre_style: one of ``CENTRE_STYLES`` (overrides ``dashed_centre`` unless None).
        edge_lines: whether solid white lines mark the outer edges of the driving lanes.
        lane_lines: whether dashed lines separate lanes of one direction.
        coloured_lane: whether the outer lane on the right is a coloured bus/bike lane.
        side_streets: the junctions.
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
    verge_m: float = 0.0
    centre_style: str | None = None
    edge_lines: bool = True
    lane_lines: bool = True
    coloured_lane: bool = False
    side_streets: tuple[SideStreet, ...] = ()

    @property
    def right_edge_m(self) -> float:
        """Lateral offset (negative) of the right curb."""
        return -(self.lanes_right * self.lane_width_m + self.parking_m)

    @property
    def left_edge_m(self) -> float:
        """Lateral offset of the left curb."""
        return self.lanes_left * self.lane_width_m + self.parking_m

    def sidewalk_span(self, out: float) -> tuple[float, float]:
        """Inner and outer lateral offsets of the sidewalk on one side (out = -1 right, +1 left).

        The inner edge is the one next to the road.
        """
        curb = self.right_edge_m if out < 0 else self.left_edge_m
        inner = curb + out * (CURB_M + self.verge_m)
        return inner, inner + out * self.sidewalk_m

    def lane_center_m(self, lane: int) -> float:
        """Lateral offset of lane ``lane``: 0.. for the ego direction, -1, -2.. for oncoming."""
        if lane >= 0:
            return -(lane + 0.5) * self.lane_width_m
        return (-lane - 0.5) * self.lane_width_m

    def side_street_at(self, x_lo: float, x_hi: float, out: float,
                       margin_m: float = 1.0) -> bool:
        """Whether [x_lo, x_hi] on side ``out`` overlaps a side street (plus ``margin_m``)."""
        for s in self.side_streets:
            if (s.right if out < 0 else s.left) and x_lo < s.x_m + s.half_width_m + margin_m \
                    and x_hi > s.x_m - s.half_width_m - margin_m:
                return True
        return False

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
        """Signed lateral offset d of world points (float32 arrays in, float32 out).

        The centreline is tabulated every 0.1 m over the points' x range and looked up
        (nearest entry: under 1 cm of error at the curvatures drawn), which is several times
        cheaper than evaluating the sines per pixel.
        """
        if not self.amplitudes_m:
            return y
        x_lo = float(x.min())
        n = int((float(x.max()) - x_lo) / _TABLE_STEP_M) + 2
        xs = x_lo + _TABLE_STEP_M * np.arange(n)
        yc, theta = self.center_y(xs)
        idx = ((x - np.float32(x_lo)) * np.float32(1.0 / _TABLE_STEP_M) + np.float32(0.5)) \
            .astype(np.intp)
        np.clip(idx, 0, n - 1, out=idx)
        return (y - np.take(yc.astype(np.float32), idx)) \
            * np.take(np.cos(theta).astype(np.float32), idx)

    @property
    def _centre(self) -> str:
        if self.centre_style is not None:
            return self.centre_style
        return "dashed" if self.dashed_centre else "solid"

    @cached_property
    def _lateral_tables(self) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Material (dashed-line flag in bit 7), dashed-line and on-road tables indexed by
        lateral offset bins."""
        reach = max(-self.right_edge_m, self.left_edge_m) + CURB_M + self.verge_m \
            + self.sidewalk_m + 1.0
        d = np.arange(-reach, reach, _LUT_STEP_M) + _LUT_STEP_M / 2
        right, left = self.right_edge_m, self.left_edge_m
        on_road = (d > right) & (d < left)
        mat = np.full(d.shape, GROUND_TERRAIN, np.uint8)
        for out in (-1.0, 1.0):
            inner, outer = self.sidewalk_span(out)
            mat[(d - inner) * (d - outer) <= 0] = GROUND_SIDEWALK
        mat[on_road] = GROUND_ASPHALT
        if self.coloured_lane and self.lanes_right > 1:
            outer_lane = (d > -self.lanes_right * self.lane_width_m) \
                & (d < -(self.lanes_right - 1) * self.lane_width_m)
            mat[outer_lane] = GROUND_LANE_PAINT
        mat[((d <= right) & (d > right - CURB_M)) | ((d >= left) & (d < left + CURB_M))] = \
            GROUND_CURB
        # Lane lines, counted from the right edge of the driving lanes in lane widths.
        lane_pos = (d + self.lanes_right * self.lane_width_m) / self.lane_width_m
        k = np.rint(lane_pos)
        n_lanes = self.lanes_right + self.lanes_left
        off = np.abs(lane_pos - k) * self.lane_width_m
        near_line = (off < _LINE_HALF_M) & (k >= 0) & (k <= n_lanes)
        edge = (k == 0) | (k == n_lanes)
        centre = (k == self.lanes_right) & (self.lanes_left > 0) & ~edge
        style = self._centre
        if self.edge_lines:
            mat[near_line & edge] = GROUND_WHITE
        if style == "solid":
            mat[near_line & centre] = GROUND_YELLOW
        elif style == "double":
            double = centre & (np.abs(off - (_LINE_HALF_M + _DOUBLE_GAP_M / 2))
                               < _LINE_HALF_M)
            mat[double] = GROUND_YELLOW
        dashed = near_line & ~edge & ~centre & self.lane_lines
        if style == "dashed":
            dashed |= near_line & centre
        mat[dashed] |= _DASH_BIT
        return reach, mat, dashed, on_road

    def paint_ground(self, x: np.ndarray, y: np.ndarray,
                     crossings_x_m: tuple[float, ...] | None = None,
                     side_streets: tuple[SideStreet, ...] | None = None
                     ) -> tuple[np.ndarray, None]:
        """Ground material palette index of world points (see the ``GROUND_*`` constants).

        Args:
            x: world x of the points (float32 array).
            y: world y of the points (same shape).
            crossings_x_m: the crossings to draw (default: all); pass the nearby ones only to
                save time.
            side_streets: the junctions to draw (default: all).
        """
        d = self.lateral(x, y)
        reach, mat_lut, _, road_lut = self._lateral_tables
        idx = ((d + np.float32(reach)) * np.float32(1.0 / _LUT_STEP_M)).astype(np.intp)
        np.clip(idx, 0, len(mat_lut) - 1, out=idx)
        # One gather: the material with the dashed-line flag in its top bit.
        mat = np.take(mat_lut, idx)
        dash = mat >= _DASH_BIT
        mat &= _DASH_BIT - 1
        if dash.any():
            period = np.float32(_DASH_PERIOD_M)
            phase = x - np.floor(x / period) * period
            mat[dash & (phase < period * np.float32(_DASH_ON))] = GROUND_WHITE
        for s in self.side_streets if side_streets is None else side_streets:
            band = np.abs(x - np.float32(s.x_m)) < np.float32(s.half_width_m)
            if not band.any():
                continue
            side = np.zeros_like(band)
            if s.right:
                side |= d < np.float32(self.right_edge_m + 0.05)
            if s.left:
                side |= d > np.float32(self.left_edge_m - 0.05)
            mat[band & side] = GROUND_ASPHALT_2
            # A stop line across the ego's lanes before the junction.
            stop = np.abs(x - np.float32(s.x_m - s.half_width_m - 1.5)) \
                < np.float32(_STOP_LINE_M / 2)
            stop &= (d < 0) & (d > np.float32(self.right_edge_m + self.parking_m))
            mat[stop] = GROUND_WHITE
        for xc in self.crossings_x_m if crossings_x_m is None else crossings_x_m:
            band = np.abs(x - np.float32(xc)) < np.float32(_CROSSING_HALF_M)
            if not band.any():
                continue
            band &= np.take(road_lut, idx)
            band &= (d - np.floor(d / np.float32(1.2)) * np.float32(1.2)) < np.float32(0.6)
            mat[band] = GROUND_WHITE
        return mat, None
