"""The colour pass of the renderer, and the camera's response to the light it receives.

Depth, instance and class maps are final before this pass runs: everything here only decides
what colour a pixel gets. Colour is ``palette[slot] x light x texture``, where the light comes
from the drawing pass (face brightness, ground shadows and lamp pools), light above 1 saturates
towards white (sun highlights on glossy parts, lamps and head lights), fog fades with distance,
and then the camera adds its own look: sensor noise, vignetting, a tone curve, blur and JPEG.
Exposure and white balance are folded into the palette when a look is made.

Works on one colour plane at a time: gathers and products on HxW planes are several times
faster in numpy than on interleaved HxWx3 arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .scene import GROUND_SLOTS, TEX_FLAT, TEX_KIND_MASK, BoxParts, Look, Rays

TEXELS_PER_M = 8.0
"""Density of box textures: tile coordinates are u = 8 (x + y) and v = 8 z of the surface."""
_SUB = 16  # sub-texel steps of the u coordinate
FOG_SKY_M = 250.0
"""The sky is fogged as a surface this far away (haze dims it, dense fog hides it)."""


@dataclass
class CameraResponse:
    """The camera's own contribution to an image, drawn once per sequence.

    Attributes:
        noise: (H + 16, W + 16) float32 multiplicative sensor noise around 1, or None; each
            frame uses a shifted window of it.
        chroma_noise: whether each colour plane gets its own window (colour noise).
        vignette: (H, W) float32 darkening towards the corners (1 in the centre), or None.
        tone_lut: (1, 256, 3) uint8 per-channel tone curve (gamma, contrast, grading), or None.
        blur_sigma_px: Gaussian blur of the lens (0 = sharp).
        jpeg_quality: JPEG round trip at this quality (0 = none).
    """

    noise: np.ndarray | None = None
    chroma_noise: bool = False
    vignette: np.ndarray | None = None
    tone_lut: np.ndarray | None = None
    blur_sigma_px: float = 0.0
    jpeg_quality: int = 0


def shade_image(look: Look, parts: BoxParts, rays: Rays, cam: np.ndarray, zbuf: np.ndarray,
                slot: np.ndarray, shade: np.ndarray, frame_index: int) -> np.ndarray:
    """Final RGB uint8 image of a rendered frame.

    Args:
        look: palette, fog, textures and camera response.
        parts: the drawn parts (slot ``GROUND_SLOTS + p`` is part p).
        rays: the frame's world rays.
        cam: camera position in the world.
        zbuf: planar depth of every pixel.
        slot: what every pixel shows (ground material, sky bin or part).
        shade: light on every pixel from the drawing pass (ground textures included).
        frame_index: shifts the sensor noise from frame to frame.
    """
    height, width = zbuf.shape
    n = len(parts.center_m)
    kinds = np.concatenate([np.full(GROUND_SLOTS, TEX_FLAT, np.int32),
                            (parts.texture & TEX_KIND_MASK).astype(np.int32)])
    tex_lut = kinds << 20
    if parts.uv_offset is not None and n:
        tex_lut[GROUND_SLOTS:] |= np.rint(parts.uv_offset * _SUB).astype(np.int32) & 4095
    # One gather for every box texture: tile (kind) and u offset from the slot, coordinates
    # from the surface point camera + depth * ray (world-anchored, shifted by the offset so
    # the texture of a moving part moves with it). u is kept in 1/16 texels until the offset
    # is taken off, so a moving texture does not jitter by a texel from frame to frame; the
    # kind sits in bits 20+, which the subtraction leaves below bit 12 untouched.
    base = np.take(tex_lut, slot)
    k = TEXELS_PER_M
    ku = TEXELS_PER_M * _SUB
    iu = zbuf * rays.combine((ku, ku, 0.0))
    iu += np.float32(ku * (cam[0] + cam[1]))
    iu = iu.astype(np.int32)
    iv = zbuf * rays.combine((0.0, 0.0, k))
    iv += np.float32(k * cam[2])
    iv = iv.astype(np.int32)
    iu -= base
    iu >>= 4
    iu &= 255
    iv &= 255
    iv <<= 8
    base >>= 20
    base <<= 16
    base |= iv
    base |= iu
    light = shade * np.take(look.textures.reshape(-1), base)
    response = look.response
    noise = None if response is None else response.noise
    vignette = None if response is None else response.vignette
    off = (frame_index * 7) % 16
    if noise is not None and not response.chroma_noise:
        light *= noise[off:off + height, off:off + width]
    over = None
    if float(light.max()) > 1.0:
        # Light above 1 bleeds towards white, softly (over / (1 + over), at most half way):
        # a red tail light stays red with a pale core, a sun glint on black paint shows.
        over = np.maximum(light - np.float32(1.0), np.float32(0.0))
        over /= over + np.float32(1.0)
        over *= np.float32(0.5)
    fog = look.fog_density_per_m > 0
    if fog:
        keep = cv2.exp(np.minimum(zbuf, np.float32(FOG_SKY_M))
                       * np.float32(-look.fog_density_per_m))
        fade = np.float32(1.0) - keep
        light *= keep
        if over is not None:
            over *= keep
    if vignette is not None:  # the lens dims everything towards the corners
        light *= vignette
        if fog:
            fade *= vignette
        if over is not None:
            over *= vignette
    paint = np.concatenate([np.arange(GROUND_SLOTS), parts.paint]) if n else \
        np.arange(GROUND_SLOTS)
    planes = []
    for c in range(3):
        plane = np.take(np.ascontiguousarray(look.palette[paint, c]), slot)
        plane *= light
        if over is not None:
            plane += over * np.float32(255.0 if look.white_rgb is None else look.white_rgb[c])
        if fog:
            plane += np.float32(look.fog_rgb[c]) * fade
        if noise is not None and response.chroma_noise:
            o = (off + 5 * c) % 16
            plane *= noise[o:o + height, o:o + width]
        planes.append(plane)
    # Every term is non-negative, so OpenCV's saturating absolute conversion is a plain
    # round-and-clip to uint8, done in one pass.
    rgb = cv2.convertScaleAbs(cv2.merge(planes))
    if response is not None:
        rgb = apply_response(rgb, response)
    return rgb


def apply_response(rgb: np.ndarray, response: CameraResponse) -> np.ndarray:
    """Tone curve, lens blur and JPEG compression of a uint8 RGB image."""
    if response.tone_lut is not None:
        rgb = cv2.LUT(rgb, response.tone_lut)
    if response.blur_sigma_px > 0:
        rgb = cv2.GaussianBlur(rgb, (0, 0), response.blur_sigma_px)
    if response.jpeg_quality > 0:
        ok, data = cv2.imencode(".jpg", rgb[..., ::-1],
                                [cv2.IMWRITE_JPEG_QUALITY, int(response.jpeg_quality)])
        if ok:
            rgb = np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])
    return rgb
