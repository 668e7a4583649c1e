"""The synthetic driving world: sequences of frames with exact depth, masks and boxes.

``SyntheticWorld(seed, ...).sequence(seq_id, num_frames)`` drives an ego camera along a
procedural road at 20 Hz and yields :class:`SynthFrame` records. ``render_scene`` renders a
hand-built scene (boxes placed explicitly, fixed camera) for closed-form checks.

Conventions:
- World frame: x forward along the start of the road, y left, z up, ground at z = 0 (flat).
  ``SynthFrame.pose`` is the camera's (x, y, z, roll, pitch, yaw) in it; pitch is positive
  when the camera looks down (the sign ``flat_ground_depth`` uses), roll follows REP-103.
- Pixel (u, v) samples the ray through image point (u, v) (integer = pixel centre, as OpenCV
  and ``backproject``); boxes are ``x2/y2``-exclusive pixel bounds of the visible mask.
- Instance ids are stable over a sequence and independent of its length:
  ``group * 10000 + k`` (actor group, k-th labelled actor in it), so they can exceed 65535;
  store instance maps as 32-bit.
- Everything is a pure function of (seed, arguments, seq_id); the first k frames of a longer
  sequence equal those of a shorter one.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import cv2
import numpy as np

from depthssd_core.classes import category_id
from depthssd_core.geometry import CameraIntrinsics

from .actors import ActorTable
from .appearance import LookInfo, make_look, plain_look
from .config import WorldConfig, check_camera
from .generate import AHEAD_M, FRAME_DT_S, SequenceParams, draw_params, lamp_pools, populate
from .render import render
from .road import Road
from .scene import (
    FIRST_FREE_PAINT,
    GROUND_SLOTS,
    NEAR_M,
    TEX_PLAIN,
    BoxParts,
    CameraState,
    GroundPainter,
    Look,
    ObjectBox3D,
    box_corners_optical,
    clipped_projection,
    polygon_truncation,
)
from .types import SKY_DEPTH_M, SynthFrame, SynthObject

_CONFIG_FIELDS = tuple(f.name for f in fields(WorldConfig))


def camera_intrinsics(width: int, height: int, fov_deg: float,
                      sensor_aspect: float | None = None) -> CameraIntrinsics:
    """Intrinsics of a ``width`` x ``height`` rendering of a camera of horizontal ``fov_deg``.

    With ``sensor_aspect`` (the camera's width / height) the camera's image is rendered as if
    resized to ``width`` x ``height``: ``fy = fx * sensor_aspect * height / width`` (a 4:3
    camera at 640x360 gives fy = 0.75 fx, exactly what resizing carla-ros-bridge's 800x600
    frames to 640x360 gives). None means the image's own aspect (square pixels).
    """
    base = CameraIntrinsics.from_fov(width, height, fov_deg)
    if sensor_aspect is None:
        return base
    fy = base.fx * sensor_aspect * height / width
    return CameraIntrinsics(base.fx, fy, base.cx, base.cy, base.width, base.height)


class SyntheticWorld:
    """A deterministic procedural CARLA-like driving world.

    Args:
        seed: world seed.
        width: width of the rendered image in pixels.
        height: height of the rendered image in pixels.
        fov_deg: fixed horizontal field of view, or None to draw one per sequence.
        camera_height_m: fixed camera height, or None to draw one per sequence.
        camera_pitch_rad: fixed downward pitch, or None to draw one per sequence.
        sensor_noise: add sensor noise to the RGB image.
        **options: the other :class:`WorldConfig` fields (``look="heldout"``,
            ``camera_roll_rad``, ``sensor_aspect``, the draw ranges, ``sky``, ``shadows``,
            ``camera_effects``, ``distractors``); plain JSON values.

    Raises:
        ValueError: naming the first bad or unknown argument.
    """

    def __init__(self, seed: int = 0, width: int = 640, height: int = 360,
                 fov_deg: float | None = None, camera_height_m: float | None = None,
                 camera_pitch_rad: float | None = None, sensor_noise: bool = True,
                 **options: Any) -> None:
        unknown = sorted(set(options) - set(_CONFIG_FIELDS))
        if unknown:
            raise ValueError(f"unknown world option(s): {', '.join(unknown)}")
        self.config = WorldConfig(seed, width, height, fov_deg, camera_height_m,
                                  camera_pitch_rad, sensor_noise, **options)
        self.config.validate()

    @classmethod
    def from_config(cls, config: WorldConfig) -> SyntheticWorld:
        """A world with the arguments held in ``config``."""
        return cls(**{name: getattr(config, name) for name in _CONFIG_FIELDS})

    def _seed_sequence(self, seq_id: int | str) -> np.random.SeedSequence:
        key = zlib.crc32(str(seq_id).encode("utf-8"))
        return np.random.SeedSequence(entropy=[int(self.config.seed), key])

    def sequence_params(self, seq_id: int | str) -> SequenceParams:
        """The camera, road, sky and traffic draws of sequence ``seq_id`` (no crossings)."""
        base = self._seed_sequence(seq_id)
        return draw_params(np.random.default_rng(base.spawn(1)[0]), self.config)

    def sequence(self, seq_id: int | str, num_frames: int) -> Iterator[SynthFrame]:
        """Yield the ``num_frames`` frames of sequence ``seq_id`` (20 Hz, from t = 0).

        A sequence depends only on (seed, arguments, seq_id); the first k frames of a longer
        sequence equal those of a shorter one.

        Raises:
            ValueError: if ``num_frames`` is negative or not an integer.
        """
        for frame, _ in self._frames(seq_id, num_frames):
            yield frame

    def look_info(self, seq_id: int | str) -> LookInfo:
        """What the look of sequence ``seq_id`` drew (sky, texture families, effects)."""
        *_, info = self._setup(seq_id, 1)
        return info

    def _setup(self, seq_id: int | str, num_frames: int):
        base = self._seed_sequence(seq_id)
        params = self.sequence_params(seq_id)

        def stream(group: int) -> np.random.Generator:
            return np.random.default_rng(np.random.SeedSequence(
                entropy=base.entropy, spawn_key=(1000 + group,)))

        c = self.config
        params, actors = populate(stream, params, int(num_frames), c.distractors)
        look, info = make_look(
            stream(0), params.sky, params.look, np.asarray(actors.palette).reshape(-1, 3),
            c.width, c.height, fog_density_per_m=params.fog_density_per_m,
            wet_road=params.wet_road, shadows=c.shadows, effects=c.camera_effects,
            sensor_noise=c.sensor_noise, lamp_pools=lamp_pools(actors, params.road))
        intr = camera_intrinsics(c.width, c.height, params.fov_deg, params.sensor_aspect)
        return base, stream, params, actors, look, intr, info

    def _frames(self, seq_id: int | str, num_frames: int):
        if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) \
                or num_frames < 0:
            raise ValueError(f"num_frames must be a non-negative integer, got {num_frames!r}")
        _, stream, params, actors, look, intr, info = self._setup(seq_id, num_frames)
        name = str(seq_id)
        sway = stream(2).uniform(0.0, 2 * math.pi, 2)
        for i in range(int(num_frames)):
            t = i * FRAME_DT_S
            yield self._frame(params, actors, look, intr, name, i, t, sway), info

    def _frame(self, params: SequenceParams, actors: ActorTable, look: Look,
               intr: CameraIntrinsics, name: str, index: int, t_s: float,
               sway: np.ndarray) -> SynthFrame:
        road = params.road
        x_e = params.ego_speed_mps * t_s
        d_e = road.lane_center_m(params.ego_lane) + 0.2 * math.sin(0.4 * t_s + sway[0])
        wx, wy, theta = road.to_world(np.array([x_e]), np.array([d_e]))
        yaw = float(theta[0]) + math.radians(0.8) * math.sin(0.3 * t_s + sway[1])
        camera = CameraState(intr, (float(wx[0]), float(wy[0]), params.camera_height_m),
                             yaw, params.camera_pitch_rad, params.camera_roll_rad)
        parts, labelled, casters = actors.at_time(t_s, road, x_e - 30.0, x_e + AHEAD_M,
                                                  FIRST_FREE_PAINT)
        window = (x_e - 30.0, x_e + AHEAD_M)
        near = tuple(xc for xc in road.crossings_x_m if window[0] < xc < window[1])
        streets = tuple(s for s in road.side_streets
                        if window[0] < s.x_m + s.half_width_m and s.x_m - s.half_width_m
                        < window[1])

        def ground(gx: np.ndarray, gy: np.ndarray) -> tuple[np.ndarray, None]:
            return road.paint_ground(gx, gy, near, streets)

        return assemble_frame(camera, parts, labelled, look, ground, name, index, t_s,
                              casters)


def assemble_frame(camera: CameraState, parts: BoxParts, labelled: list[ObjectBox3D],
                   look: Look, ground: GroundPainter | None, sequence: str, index: int,
                   t_s: float, casters: BoxParts | None = None) -> SynthFrame:
    """Render a camera view and derive every labelled object's ground truth from the pixels.

    Args:
        camera: the camera pose and intrinsics.
        parts: every box part to draw.
        labelled: the full 3D boxes of the labelled owners among the parts.
        look: palette, light, textures, fog and camera response.
        ground: painter of the ground plane (None: bare ground).
        sequence: name stored in the frame.
        index: frame index stored in the frame (also varies the sensor noise).
        t_s: timestamp stored in the frame.
        casters: boxes that cast shadows on the ground.
    """
    out = render(camera, parts, look, ground, index, casters)
    intr = camera.intrinsics
    owner = out.owner
    instance = owner
    semantic = np.zeros(owner.shape, np.uint8)
    r_ow = camera.world_from_optical().T
    cam = np.asarray(camera.position_m, dtype=np.float64)
    boxes = [b for b in labelled if out.visible.get(b.instance_id, 0) > 0]
    objects = []
    if boxes:
        centre_o, axes_o, corners = box_corners_optical(
            np.array([b.center_m for b in boxes]), np.array([b.size_m for b in boxes]) / 2,
            np.array([b.yaw_rad for b in boxes]), r_ow, cam)
        zc = corners[:, :, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            proj = np.stack([intr.fx * corners[:, :, 0] / zc + intr.cx,
                             intr.fy * corners[:, :, 1] / zc + intr.cy], axis=2)
        in_front = zc.min(axis=1) >= NEAR_M
    for i, box in enumerate(boxes):
        pts = proj[i] if in_front[i] else clipped_projection(corners[i], intr)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        x0, y0 = max(0, math.floor(lo[0])), max(0, math.floor(lo[1]))
        x1 = min(intr.width, math.ceil(hi[0]) + 2)
        y1 = min(intr.height, math.ceil(hi[1]) + 2)
        inside = lo[0] >= -0.5 and lo[1] >= -0.5 and hi[0] <= intr.width - 0.5 \
            and hi[1] <= intr.height - 0.5
        mask = owner[y0:y1, x0:x1] == box.instance_id
        visible = out.visible[box.instance_id]
        semantic[y0:y1, x0:x1][mask] = box.category_id
        cols = np.flatnonzero(mask.any(axis=0))
        rows = np.flatnonzero(mask.any(axis=1))
        depth_vis = out.depth_m[y0:y1, x0:x1][mask]
        forward = axes_o[i][:, 0]
        full = out.footprint[box.instance_id]
        objects.append(SynthObject(
            instance_id=box.instance_id,
            category_id=box.category_id,
            box_xyxy=(float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1),
                      float(y0 + rows[-1] + 1)),
            occlusion=float(max(0.0, 1.0 - visible / full)),
            truncation=0.0 if inside else polygon_truncation(pts, intr.width, intr.height),
            center_optical=tuple(float(v) for v in centre_o[i]),
            size_m=tuple(float(v) for v in box.size_m),
            yaw_rad=float(math.atan2(-forward[2], forward[0])),
            distance_m=_median(depth_vis),
            visible_pixels=visible,
            rotation_optical=axes_o[i].copy(),
            footprint_pixels=full,
        ))
    pose = (*camera.position_m, camera.roll_rad, camera.pitch_rad, camera.yaw_rad)
    return SynthFrame(out.rgb, out.depth_m, instance, semantic, intr,
                      tuple(float(v) for v in pose), round(t_s, 6), sequence, index,
                      float(camera.position_m[2]), float(camera.pitch_rad), objects)


def _median(values: np.ndarray) -> float:
    """Median of a 1-D array (as np.median: mean of the middle pair), via partial sorting."""
    n = len(values)
    half = n // 2
    if n % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return float((part[half - 1] + part[half]) / 2)


@dataclass
class PlacedObject:
    """One box placed by hand in a :class:`Scene` (world frame: x forward, y left, z up).

    Attributes:
        category: class name (one of ``CLASSES``), or None for unlabelled background.
        center_m: (x, y, z) of the box centre in the world.
        size_m: (length, width, height) along the box's heading, its left and up.
        yaw_rad: heading of the length axis about world z (0 = along world x).
        color_rgb: flat colour 0..255.
    """

    category: str | None
    center_m: tuple[float, float, float]
    size_m: tuple[float, float, float]
    yaw_rad: float = 0.0
    color_rgb: tuple[float, float, float] = (150.0, 60.0, 60.0)


@dataclass
class Scene:
    """A hand-built scene seen by a fixed camera at (camera_x_m, camera_y_m, camera_height_m).

    Attributes:
        width: image width in pixels.
        height: image height in pixels.
        fov_deg: horizontal field of view.
        camera_height_m: height of the optical centre above the ground (z = 0).
        camera_pitch_rad: downward pitch.
        camera_yaw_rad: heading of the camera about world z (0 looks along world x).
        camera_x_m: world x of the camera.
        camera_y_m: world y of the camera.
        objects: the boxes in the scene.
        road: the road painted on the ground (default: a straight two-by-two lane road);
            None leaves bare ground.
        fog_density_per_m: fog extinction per metre.
        camera_roll_rad: roll about the viewing direction (REP-103).
        sensor_aspect: aspect of the camera rendered into the image (None: square pixels).
        look: the look to render with (None: a plain, noise-free one); it must hold palette
            entries for the objects from ``FIRST_FREE_PAINT`` on.
        shadows: whether the objects cast shadows (with ``look``'s sun).
    """

    width: int = 160
    height: int = 90
    fov_deg: float = 90.0
    camera_height_m: float = 1.6
    camera_pitch_rad: float = 0.0
    camera_yaw_rad: float = 0.0
    camera_x_m: float = 0.0
    camera_y_m: float = 0.0
    objects: Sequence[PlacedObject] = field(default_factory=list)
    road: Road | None = field(default_factory=Road)
    fog_density_per_m: float = 0.0
    camera_roll_rad: float = 0.0
    sensor_aspect: float | None = None
    look: Look | None = None
    shadows: bool = False


def render_scene(scene: Scene, sequence: str = "scene", frame_index: int = 0,
                 timestamp_s: float = 0.0) -> SynthFrame:
    """Render a hand-built :class:`Scene` (plain, noise-free shading unless it has a look).

    Labelled objects get instance ids 1, 2, ... in the order of ``scene.objects``.

    Raises:
        ValueError: if the camera arguments or an object's class or size are invalid.
    """
    check_camera(scene.width, scene.height, scene.fov_deg, scene.camera_height_m,
                 scene.camera_pitch_rad, scene.camera_roll_rad)
    intr = camera_intrinsics(scene.width, scene.height, scene.fov_deg, scene.sensor_aspect)
    camera = CameraState(intr, (scene.camera_x_m, scene.camera_y_m, scene.camera_height_m),
                         scene.camera_yaw_rad, scene.camera_pitch_rad, scene.camera_roll_rad)
    n = len(scene.objects)
    centres = np.zeros((n, 3))
    sizes = np.zeros((n, 3))
    yaws = np.zeros(n)
    owners = np.zeros(n, np.int64)
    colours = []
    labelled = []
    next_id = 1
    for i, obj in enumerate(scene.objects):
        size = np.asarray(obj.size_m, dtype=np.float64)
        if size.shape != (3,) or not np.all(np.isfinite(size)) or np.any(size <= 0):
            raise ValueError(f"object {i}: size_m must be three positive lengths, got "
                             f"{obj.size_m}")
        centres[i] = obj.center_m
        sizes[i] = size
        yaws[i] = obj.yaw_rad
        colours.append(obj.color_rgb)
        if obj.category is None:
            owners[i] = -(i + 1)
        else:
            owners[i] = next_id
            labelled.append(ObjectBox3D(next_id, category_id(obj.category), centres[i].copy(),
                                        size.copy(), float(obj.yaw_rad)))
            next_id += 1
    parts = BoxParts(centres, sizes / 2, yaws, np.arange(n) + GROUND_SLOTS,
                     np.full(n, TEX_PLAIN), owners)
    look = scene.look if scene.look is not None else \
        plain_look(np.asarray(colours, np.float64), scene.fog_density_per_m)
    road = scene.road
    ground = None if road is None else road.paint_ground
    return assemble_frame(camera, parts, labelled, look, ground, sequence, frame_index,
                          timestamp_s, parts if scene.shadows else None)


def rotation_world_from_optical(frame: SynthFrame) -> np.ndarray:
    """3x3 rotation of a frame's camera (optical vectors to world vectors)."""
    x, y, z, roll, pitch, yaw = frame.pose
    return CameraState(frame.intrinsics, (x, y, z), yaw, pitch, roll).world_from_optical()


def colorize_depth(depth_m: np.ndarray, max_depth_m: float = 120.0) -> np.ndarray:
    """RGB uint8 picture of a depth map (log scale, near = warm; sky black)."""
    d = np.clip(depth_m, 0.5, max_depth_m)
    scaled = np.log(d / 0.5) / math.log(max_depth_m / 0.5)
    img = cv2.applyColorMap((255 * (1.0 - scaled)).astype(np.uint8), cv2.COLORMAP_TURBO)
    img = img[..., ::-1].copy()
    img[depth_m >= SKY_DEPTH_M] = 0
    return img


def preview(frame: SynthFrame, draw_boxes: bool = True) -> np.ndarray:
    """RGB uint8 image: the frame (with its visible boxes) beside its colourised depth."""
    rgb = frame.rgb.copy()
    if draw_boxes:
        for obj in frame.objects:
            x1, y1, x2, y2 = (round(v) for v in obj.box_xyxy)
            hue = (obj.category_id * 37) % 180
            colour = cv2.cvtColor(np.uint8([[[hue, 255, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
            cv2.rectangle(rgb, (x1, y1), (x2 - 1, y2 - 1), tuple(int(c) for c in colour), 1)
    return np.concatenate([rgb, colorize_depth(frame.depth_m)], axis=1)
