"""Options of the synthetic world (``WorldConfig``): camera draws, look and effects.

Every option is a plain JSON/YAML value (numbers, strings, booleans, lists of those), so a
training configuration can hold a dict of world options and pass it straight on:
``SyntheticWorld(seed=s, width=w, height=h, **options)`` or ``WorldConfig.from_dict(d)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from .appearance import SKIES

LOOKS = ("train", "heldout")


def parse_aspect(value: Any, name: str = "sensor_aspect") -> float:
    """A sensor aspect ratio from ``"16:9"``-style text or a positive number."""
    if isinstance(value, str):
        parts = value.split(":")
        try:
            w, h = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"{name} must look like '4:3' or be a number, got {value!r}") \
                from None
        ratio = w / h if h > 0 else float("nan")
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        ratio = float(value)
    else:
        raise ValueError(f"{name} must look like '4:3' or be a number, got {value!r}")
    if not (math.isfinite(ratio) and 0.2 <= ratio <= 5.0):
        raise ValueError(f"{name} must be an aspect ratio in [0.2, 5], got {value!r}")
    return ratio


def check_camera(width: Any, height: Any, fov_deg: float | None,
                 camera_height_m: float | None, camera_pitch_rad: float | None,
                 camera_roll_rad: float | None = None) -> None:
    """Raise ValueError naming the first camera argument that cannot work."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, value, lo, hi in (("fov_deg", fov_deg, 1.0, 170.0),
                                ("camera_height_m", camera_height_m, 0.05, 100.0),
                                ("camera_pitch_rad", camera_pitch_rad, -1.2, 1.2),
                                ("camera_roll_rad", camera_roll_rad, -0.8, 0.8)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)) \
                or not (math.isfinite(value) and lo <= value <= hi):
            raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")


def _range(value: Any, name: str, lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair [low, high], got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and lo <= a <= b <= hi):
        raise ValueError(f"{name} must satisfy {lo} <= low <= high <= {hi}, got {value!r}")
    return (a, b)


@dataclass(frozen=True)
class WorldConfig:
    """Arguments of a :class:`SyntheticWorld`; None camera values are drawn per sequence.

    Attributes:
        seed: world seed; with the sequence id it fixes every draw.
        width: width of the rendered image in pixels.
        height: height of the rendered image in pixels.
        fov_deg: horizontal field of view (drawn from ``fov_range_deg`` when None).
        camera_height_m: camera height (drawn from ``camera_height_range_m`` when None).
        camera_pitch_rad: downward pitch (drawn from ``camera_pitch_range_deg`` when None).
        sensor_noise: whether the sensor adds noise to the RGB image.
        look: "train" (default) or "heldout": the held-out look also draws appearance and
            shape families that the training look never does (docs/ARCHITECTURE.md).
        camera_roll_rad: roll (REP-103, positive lowers the right side). None draws one from
            ``camera_roll_range_deg`` for sequences whose pitch is drawn, and keeps a fixed
            pitch level (roll 0).
        sensor_aspect: aspect ratio ("16:9", "4:3" or a number) of the camera whose view is
            rendered into ``width`` x ``height``: a 4:3 camera rendered at 640x360 is squeezed
            as if its 800x600 image had been resized (fy = 0.75 fx). None draws one from
            ``sensor_aspects`` for sequences whose field of view is drawn, and uses the
            image's own aspect (square pixels) with a fixed ``fov_deg``.
        fov_range_deg: [low, high] of the drawn field of view.
        camera_height_range_m: [low, high] of the drawn camera height.
        camera_pitch_range_deg: [low, high] of the drawn downward pitch (degrees).
        camera_roll_range_deg: [low, high] of the drawn roll (degrees).
        sensor_aspects: the aspect ratios a sequence may draw (uniformly).
        sky: force one sky type of the look (None draws one per sequence).
        shadows: whether objects and buildings cast shadows on the ground.
        camera_effects: whether the camera response varies (white balance, vignetting,
            tone curve, blur, JPEG); exposure and noise are governed apart.
        distractors: whether street furniture, cones and barriers stand around.
    """

    seed: int = 0
    width: int = 640
    height: int = 360
    fov_deg: float | None = None
    camera_height_m: float | None = None
    camera_pitch_rad: float | None = None
    sensor_noise: bool = True
    look: str = "train"
    camera_roll_rad: float | None = None
    sensor_aspect: str | float | None = None
    fov_range_deg: tuple[float, float] = (50.0, 120.0)
    camera_height_range_m: tuple[float, float] = (1.0, 3.0)
    camera_pitch_range_deg: tuple[float, float] = (-10.0, 10.0)
    camera_roll_range_deg: tuple[float, float] = (-3.0, 3.0)
    sensor_aspects: tuple[str | float, ...] = ("16:9", "4:3")
    sky: str | None = None
    shadows: bool = True
    camera_effects: bool = True
    distractors: bool = True

    def __post_init__(self) -> None:
        # JSON and YAML give lists; keep tuples so the config stays hashable and comparable.
        for name in ("fov_range_deg", "camera_height_range_m", "camera_pitch_range_deg",
                     "camera_roll_range_deg", "sensor_aspects"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) \
                or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        check_camera(self.width, self.height, self.fov_deg, self.camera_height_m,
                     self.camera_pitch_rad, self.camera_roll_rad)
        if self.look not in LOOKS:
            raise ValueError(f"look must be one of {LOOKS}, got {self.look!r}")
        if self.sensor_aspect is not None:
            parse_aspect(self.sensor_aspect)
        _range(self.fov_range_deg, "fov_range_deg", 1.0, 170.0)
        _range(self.camera_height_range_m, "camera_height_range_m", 0.05, 100.0)
        _range(self.camera_pitch_range_deg, "camera_pitch_range_deg", -68.0, 68.0)
        _range(self.camera_roll_range_deg, "camera_roll_range_deg", -45.0, 45.0)
        if not isinstance(self.sensor_aspects, tuple) or not self.sensor_aspects:
            raise ValueError(f"sensor_aspects must be a non-empty list, got "
                             f"{self.sensor_aspects!r}")
        for a in self.sensor_aspects:
            parse_aspect(a, "sensor_aspects")
        if self.sky is not None and self.sky not in SKIES[self.look]:
            raise ValueError(f"sky must be one of {SKIES[self.look]} for look {self.look!r}, "
                             f"got {self.sky!r}")
        for name in ("sensor_noise", "shadows", "camera_effects", "distractors"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """The options as plain JSON values (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> WorldConfig:
        """A validated config from a dict; unknown keys are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown world option(s): {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        config = cls(**values)
        config.validate()
        return config
