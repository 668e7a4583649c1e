"""Appearance draws of a sequence: sky type, sun, light, paints, fog, wet roads, camera response.

Everything the answer (depth, boxes, classes) must not depend on is drawn here, once per
sequence, from the sequence's appearance generator. Sky types come in two families: the
training look draws ``TRAIN_SKIES``; the held-out look draws ``HELDOUT_SKIES`` most of the time
(and the training ones otherwise), so a test split can hold skies never trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import scene as R
from .road import (
    GROUND_ASPHALT,
    GROUND_ASPHALT_2,
    GROUND_CURB,
    GROUND_LANE_PAINT,
    GROUND_SIDEWALK,
    GROUND_TERRAIN,
    GROUND_WHITE,
    GROUND_YELLOW,
)
from .shading import CameraResponse
from .textures import texture_bank

TRAIN_SKIES = ("clear", "overcast", "sunset", "night")
HELDOUT_SKIES = ("violet_dusk", "dust")
SKIES = {"train": TRAIN_SKIES, "heldout": TRAIN_SKIES + HELDOUT_SKIES}
"""Sky types each look may draw."""
_TRAIN_SKY_P = (0.42, 0.22, 0.16, 0.20)
HELDOUT_SKY_SHARE = 0.6
"""Share of held-out sequences under a held-out sky type."""


def draw_sky(rng: np.random.Generator, look: str) -> str:
    """A sky type for a sequence of ``look``."""
    if look == "heldout" and rng.random() < HELDOUT_SKY_SHARE:
        return HELDOUT_SKIES[int(rng.integers(len(HELDOUT_SKIES)))]
    return TRAIN_SKIES[int(rng.choice(len(TRAIN_SKIES), p=_TRAIN_SKY_P))]


@dataclass
class LookInfo:
    """What a sequence's look drew (for tests, previews and the documentation).

    Attributes:
        sky: the sky type.
        families: texture family per slot (see ``textures.texture_bank``).
        wet_road: whether the road is wet.
        exposure: exposure gain.
        response: names of the camera-response effects that are on.
    """

    sky: str
    families: dict[str, str]
    wet_road: bool
    exposure: float
    response: list[str] = field(default_factory=list)


def _u(rng: np.random.Generator, lo: float, hi: float, n: int | None = None):
    return rng.uniform(lo, hi) if n is None else rng.uniform(lo, hi, n)


def _sky_colours(rng: np.random.Generator, sky: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(horizon RGB, zenith RGB, curve exponent) of a sky type."""
    if sky == "clear":
        horizon = np.array([_u(rng, 180, 225), _u(rng, 195, 230), _u(rng, 215, 250)])
        top = np.array([_u(rng, 35, 110), _u(rng, 85, 160), _u(rng, 175, 245)])
        return horizon, top, _u(rng, 0.5, 1.2)
    if sky == "overcast":
        g = _u(rng, 145, 220)
        horizon = g * (1 + _u(rng, -0.04, 0.04, 3))
        return horizon, horizon * _u(rng, 0.78, 0.97), 1.0
    if sky == "sunset":
        horizon = np.array([_u(rng, 225, 255), _u(rng, 110, 185), _u(rng, 50, 125)])
        top = np.array([_u(rng, 45, 95), _u(rng, 55, 105), _u(rng, 115, 175)])
        return horizon, top, _u(rng, 0.4, 0.8)
    if sky == "night":
        glow = rng.random() < 0.5  # city light on low clouds
        horizon = np.array([_u(rng, 45, 75), _u(rng, 35, 55), _u(rng, 30, 50)]) if glow \
            else np.array([_u(rng, 15, 40), _u(rng, 20, 45), _u(rng, 35, 75)])
        top = np.array([_u(rng, 2, 10), _u(rng, 4, 12), _u(rng, 12, 30)])
        return horizon, top, _u(rng, 0.4, 0.9)
    if sky == "violet_dusk":
        horizon = np.array([_u(rng, 195, 240), _u(rng, 110, 160), _u(rng, 190, 240)])
        top = np.array([_u(rng, 55, 95), _u(rng, 25, 60), _u(rng, 105, 155)])
        return horizon, top, _u(rng, 0.5, 1.0)
    if sky == "dust":
        horizon = np.array([_u(rng, 185, 220), _u(rng, 145, 180), _u(rng, 105, 140)])
        return horizon, horizon * _u(rng, 0.75, 0.9), 1.0
    raise ValueError(f"unknown sky type {sky!r}")


# (sun elevation deg, sun, ambient, light tint ranges) per sky type
_LIGHT = {
    "clear": ((15, 70), (0.45, 0.7), (0.3, 0.5), ((1, 1), (0.95, 1.0), (0.88, 1.0))),
    "overcast": ((30, 70), (0.03, 0.1), (0.7, 0.95), ((0.95, 1.0), (0.97, 1.0), (0.97, 1.05))),
    "sunset": ((2, 14), (0.5, 0.8), (0.22, 0.38), ((1, 1), (0.7, 0.88), (0.48, 0.7))),
    "night": ((20, 60), (0.0, 0.04), (0.1, 0.22), ((0.75, 1.0), (0.8, 0.95), (0.7, 1.05))),
    "violet_dusk": ((1, 8), (0.3, 0.5), (0.3, 0.42), ((0.88, 1.0), (0.68, 0.8), (1, 1))),
    "dust": ((20, 60), (0.25, 0.45), (0.45, 0.6), ((1, 1), (0.8, 0.9), (0.6, 0.72))),
}


def ground_colours(rng: np.random.Generator, wet: bool) -> np.ndarray:
    """(8, 3) colours of the ground materials (see ``road.GROUND_*``)."""
    g = np.zeros((R.SKY_SLOT0, 3))
    kind = rng.random()
    if kind < 0.5:
        g[GROUND_TERRAIN] = (_u(rng, 40, 90), _u(rng, 75, 125), _u(rng, 25, 60))
    elif kind < 0.75:
        g[GROUND_TERRAIN] = (_u(rng, 110, 150), _u(rng, 100, 130), _u(rng, 60, 90))
    elif kind < 0.9:
        g[GROUND_TERRAIN] = (_u(rng, 90, 130), _u(rng, 70, 100), _u(rng, 50, 75))
    else:
        g[GROUND_TERRAIN] = _u(rng, 110, 150) * np.array([1.0, 1.0, 0.95])
    asphalt = _u(rng, 45, 115) + rng.normal(0, 4, 3)
    if wet:
        asphalt *= _u(rng, 0.5, 0.75)
    g[GROUND_ASPHALT] = asphalt
    g[GROUND_ASPHALT_2] = asphalt + _u(rng, -15, 15)
    g[GROUND_WHITE] = _u(rng, 190, 240)
    g[GROUND_YELLOW] = (_u(rng, 200, 235), _u(rng, 150, 190), _u(rng, 20, 70))
    kind = rng.random()
    if kind < 0.6:
        g[GROUND_SIDEWALK] = _u(rng, 120, 195) + rng.normal(0, 6, 3)
    elif kind < 0.8:
        g[GROUND_SIDEWALK] = (_u(rng, 145, 185), _u(rng, 85, 125), _u(rng, 65, 100))
    else:
        g[GROUND_SIDEWALK] = (_u(rng, 165, 200), _u(rng, 155, 185), _u(rng, 125, 160))
    g[GROUND_CURB] = _u(rng, 130, 200)
    g[GROUND_LANE_PAINT] = ((_u(rng, 150, 185), _u(rng, 45, 75), _u(rng, 40, 65)),
                            (_u(rng, 60, 95), _u(rng, 125, 165), _u(rng, 70, 100)),
                            (_u(rng, 45, 75), _u(rng, 85, 125), _u(rng, 155, 195)))[
        int(rng.integers(3))]
    return np.clip(g, 0, 255)


def _tone_lut(rng: np.random.Generator, look: str, names: list[str]) -> np.ndarray | None:
    """Per-channel uint8 tone curve: gamma, sometimes an S curve or lifted blacks."""
    x = np.arange(256, dtype=np.float64) / 255.0
    gamma = math.exp(_u(rng, math.log(0.8), math.log(1.25)))
    y = x ** (1.0 / gamma)
    curves = np.stack([y, y, y], axis=1)
    if rng.random() < 0.4:
        s = 3 * y * y - 2 * y ** 3
        curves = curves + _u(rng, 0.2, 0.7) * (s - y)[:, None]
        names.append("s_curve")
    if rng.random() < 0.2:
        lift = _u(rng, 0.02, 0.08)
        curves = lift + (1 - lift) * curves
        names.append("lifted_blacks")
    if look == "heldout" and rng.random() < 0.5:
        # Held-out grading: teal shadows and orange highlights (split toning).
        k = _u(rng, 0.05, 0.12)
        shadow, highlight = 1 - curves, curves
        curves = curves + k * np.stack([highlight[:, 0] - shadow[:, 0],
                                        np.zeros(256), shadow[:, 2] - highlight[:, 2]],
                                       axis=1) * curves * (1 - curves) * 4
        names.append("split_tone")
    names.append(f"gamma_{gamma:.2f}")
    return np.clip(np.rint(255 * curves), 0, 255).astype(np.uint8)[None]


def camera_response(rng: np.random.Generator, look: str, night: bool, width: int,
                    height: int, effects: bool, sensor_noise: bool
                    ) -> tuple[CameraResponse, list[str]]:
    """The camera's response of a sequence, and the names of the effects that are on."""
    names: list[str] = []
    noise = None
    if sensor_noise:
        std = _u(rng, 0.015, 0.05) if night else _u(rng, 0.004, 0.03)
        noise = (1.0 + rng.standard_normal((height + 16, width + 16), np.float32)
                 * np.float32(std)).astype(np.float32)
        names.append("noise")
    if not effects:
        return CameraResponse(noise=noise), names
    chroma = noise is not None and rng.random() < 0.35
    vignette = None
    if rng.random() < 0.5:
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        r2 = ((xx - width / 2) / (width / 2)) ** 2 + ((yy - height / 2) / (width / 2)) ** 2
        vignette = np.clip(1.0 - _u(rng, 0.1, 0.5) * r2 / 1.3, 0.3, 1.0).astype(np.float32)
        names.append("vignette")
    tone = _tone_lut(rng, look, names)
    blur = _u(rng, 0.4, 1.2) if rng.random() < 0.25 else 0.0
    if blur:
        names.append("blur")
    jpeg = int(rng.integers(35, 91)) if rng.random() < 0.2 else 0
    if jpeg:
        names.append("jpeg")
    if chroma:
        names.append("chroma_noise")
    return CameraResponse(noise, chroma, vignette, tone, blur, jpeg), names


def make_look(rng: np.random.Generator, sky: str, look: str, actor_rgb: np.ndarray,
              width: int, height: int, *, fog_density_per_m: float, wet_road: bool,
              shadows: bool, effects: bool, sensor_noise: bool,
              lamp_pools: np.ndarray | None = None) -> tuple[R.Look, LookInfo]:
    """The look of a sequence.

    Args:
        rng: the sequence's appearance generator.
        sky: its sky type.
        look: "train" or "heldout".
        actor_rgb: (N, 3) colours of the actors' parts (palette entries from
            ``FIRST_FREE_PAINT``).
        width: image width.
        height: image height.
        fog_density_per_m: fog extinction per metre.
        wet_road: whether the road is wet.
        shadows: whether objects cast shadows (when the sky has a sun).
        effects: camera response effects (vignette, tone curve, blur, JPEG) on or off.
        sensor_noise: whether the sensor adds noise.
        lamp_pools: (L, 3) world (x, y, radius) of street lamps' light on the ground.
    """
    night = sky == "night"
    elev_deg, sun_r, amb_r, tint_r = _LIGHT[sky]
    elev = math.radians(_u(rng, *elev_deg))
    az = _u(rng, 0, 2 * math.pi)
    sun_dir = np.array([math.cos(elev) * math.cos(az), math.cos(elev) * math.sin(az),
                        math.sin(elev)])
    sun, ambient = _u(rng, *sun_r), _u(rng, *amb_r)
    if night and rng.random() < 0.5:  # sodium street lighting
        tint = np.array([1.0, _u(rng, 0.78, 0.88), _u(rng, 0.5, 0.65)])
    else:
        tint = np.array([_u(rng, *r) for r in tint_r])
    horizon, top, curve = _sky_colours(rng, sky)
    t = ((np.arange(R.SKY_BINS) + 0.5) / R.SKY_BINS) ** curve
    sky_rgb = horizon[None] + (top - horizon)[None] * t[:, None]
    if sky == "sunset":  # a bright band just above the horizon
        sky_rgb += 25.0 * np.exp(-((np.arange(R.SKY_BINS) / R.SKY_BINS) / 0.08) ** 2)[:, None]
    exposure = math.exp(_u(rng, math.log(0.75), math.log(1.35)))
    if night:
        exposure *= _u(rng, 1.1, 1.5)
    wb = np.array([_u(rng, 0.86, 1.14), 1.0, _u(rng, 0.86, 1.14)]) if effects else np.ones(3)
    gain = exposure * wb
    ground = ground_colours(rng, wet_road)
    palette = np.concatenate([ground * tint * gain, np.clip(sky_rgb, 0, 255) * gain,
                              np.asarray(actor_rgb, np.float64).reshape(-1, 3) * tint * gain])
    fog_rgb = (horizon * _u(rng, 0.75, 1.0) + _u(rng, -10, 10)) * gain
    if sky == "dust":
        fog_density_per_m = max(fog_density_per_m, _u(rng, 0.008, 0.025))
    textures, ground_tex, families = texture_bank(rng, look, night)
    response, effect_names = camera_response(rng, look, night, width, height, effects,
                                             sensor_noise)
    sunny = sky not in ("overcast", "night")
    out = R.Look(
        palette=palette.astype(np.float32), sun_dir=sun_dir, ambient=float(ambient),
        sun=float(sun), fog_density_per_m=float(fog_density_per_m),
        fog_rgb=np.clip(fog_rgb, 0, 255).astype(np.float32), textures=textures,
        ground_textures=ground_tex,
        emissive_light=float(_u(rng, 2.0, 3.5) if night else _u(rng, 1.05, 1.4)),
        specular=float(_u(rng, 0.5, 1.5) if sunny else _u(rng, 0.0, 0.3)),
        shadows=bool(shadows and sunny),
        ground_sheen=float(_u(rng, 0.6, 2.0) if wet_road else 0.0),
        lamp_pools=lamp_pools if night else None,
        lamp_light=float(_u(rng, 0.5, 1.1) if night else 0.0),
        headlight_light=float(_u(rng, 0.15, 0.45) if night else 0.0),
        white_rgb=(255.0 * gain).astype(np.float32), response=response)
    return out, LookInfo(sky, families, wet_road, float(exposure), effect_names)


def plain_look(object_rgb: np.ndarray, fog_density_per_m: float = 0.0) -> R.Look:
    """Flat, noise-free look of hand-built scenes (``render_scene``): no texture, no effects."""
    ground = np.array([[90, 110, 60], [80, 80, 82], [220, 220, 220], [220, 180, 40],
                       [160, 160, 155], [180, 180, 180], [170, 60, 50], [75, 75, 78]],
                      np.float64)
    horizon, top = np.array([190.0, 210.0, 235.0]), np.array([80.0, 130.0, 220.0])
    t = (np.arange(R.SKY_BINS) + 0.5) / R.SKY_BINS
    sky = horizon[None] + (top - horizon)[None] * t[:, None]
    palette = np.concatenate([ground, sky, np.asarray(object_rgb, np.float64).reshape(-1, 3)])
    return R.Look(palette.astype(np.float32), np.array([0.3, 0.4, 0.866]), 0.6, 0.4,
                  fog_density_per_m, np.array([200, 205, 210], np.float32),
                  np.ones((R.NUM_TEXTURES, 256, 256), np.float32),
                  np.ones((R.SKY_SLOT0, 256, 256), np.float32))
