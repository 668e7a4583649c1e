"""Embedded synthetic CARLA-like driving world with pixel-exact ground truth.

``SyntheticWorld(seed, width, height, fov_deg, ...).sequence(seq_id, num_frames)`` yields
:class:`SynthFrame` records (RGB, planar depth, instance and class maps, visible 2D boxes with
occlusion and truncation, 3D boxes in the optical frame). ``render_scene`` renders a scene
placed by hand for closed-form tests; ``preview`` draws a frame beside its depth.
"""

from .generate import FRAME_DT_S, SequenceParams
from .road import Road
from .types import SKY_DEPTH_M, SynthFrame, SynthObject
from .world import (
                    PlacedObject,
                    Scene,
                    SyntheticWorld,
                    WorldConfig,
                    colorize_depth,
                    preview,
                    render_scene,
                    rotation_world_from_optical,
)

__all__ = [
    "FRAME_DT_S",
    "SKY_DEPTH_M",
    "PlacedObject",
    "Road",
    "Scene",
    "SequenceParams",
    "SynthFrame",
    "SynthObject",
    "SyntheticWorld",
    "WorldConfig",
    "colorize_depth",
    "preview",
    "render_scene",
    "rotation_world_from_optical",
]
