"""Embedded synthetic CARLA-like driving world with pixel-exact ground truth.

``SyntheticWorld(seed, width, height, fov_deg, ..., look="train").sequence(seq_id, num_frames)``
yields :class:`SynthFrame` records (RGB, planar depth, instance and class maps, visible 2D boxes
with occlusion and truncation, 3D boxes in the optical frame). Appearance (sky, sun, shadows,
textures, paint, fog, camera response), shapes and cameras are randomized per sequence;
``look="heldout"`` also draws families training never sees. ``render_scene`` renders a scene
placed by hand for closed-form tests; ``preview`` draws a frame beside its depth.
"""

from .appearance import HELDOUT_SKIES, SKIES, TRAIN_SKIES, LookInfo
from .config import LOOKS, WorldConfig
from .generate import FRAME_DT_S, SequenceParams
from .road import Road, SideStreet
from .types import SKY_DEPTH_M, SynthFrame, SynthObject
from .world import (
    PlacedObject,
    Scene,
    SyntheticWorld,
    camera_intrinsics,
    colorize_depth,
    preview,
    render_scene,
    rotation_world_from_optical,
)

__all__ = [
    "FRAME_DT_S",
    "HELDOUT_SKIES",
    "LOOKS",
    "SKIES",
    "SKY_DEPTH_M",
    "TRAIN_SKIES",
    "LookInfo",
    "PlacedObject",
    "Road",
    "Scene",
    "SequenceParams",
    "SideStreet",
    "SynthFrame",
    "SynthObject",
    "SyntheticWorld",
    "WorldConfig",
    "camera_intrinsics",
    "colorize_depth",
    "preview",
    "render_scene",
    "rotation_world_from_optical",
]
