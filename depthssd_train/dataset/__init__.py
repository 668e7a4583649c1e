"""The depthssd dataset: on-disk format, validation, preview, torch datasets, augmentation."""

from depthssd_train.dataset.format import (
    DEFAULT_METRES_PER_UNIT,
    FrameRecord,
    LabeledFrame,
    ObjectLabel,
    decode_depth,
    encode_depth,
    frame_from_synth,
    load_coco,
    load_depth_format,
    load_index,
    read_depth_png,
    read_rgb_png,
)
from depthssd_train.dataset.writer import DatasetWriter, write_split

__all__ = [
    "DEFAULT_METRES_PER_UNIT",
    "DatasetWriter",
    "FrameRecord",
    "LabeledFrame",
    "ObjectLabel",
    "decode_depth",
    "encode_depth",
    "frame_from_synth",
    "load_coco",
    "load_depth_format",
    "load_index",
    "read_depth_png",
    "read_rgb_png",
    "write_split",
]
