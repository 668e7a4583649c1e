"""The object classes depthssd detects, named after CARLA's semantic tags.

The COCO category id of a class is its index + 1 and never changes; in the network, class 0 is
background and classes 1..8 are the ones below (so network class == COCO category id).
"""

CLASSES: tuple[str, ...] = (
    "car",
    "truck",
    "bus",
    "motorcycle",
    "bicycle",
    "pedestrian",
    "traffic_light",
    "traffic_sign",
)
NUM_CLASSES = len(CLASSES)

# CARLA semantic segmentation tags (see CARLA's docs) for the classes above. CARLA tags the rider
# of a bicycle or motorcycle as Rider (13); we fold riders into the vehicle they ride, because a
# planner cares about the vehicle's extent, not the person on it.
CARLA_SEMANTIC_TAGS: dict[int, str] = {
    12: "pedestrian",
    13: "bicycle",
    14: "car",
    15: "truck",
    16: "bus",
    18: "motorcycle",
    19: "bicycle",
    7: "traffic_light",
    8: "traffic_sign",
}


def class_index(name: str) -> int:
    """Return the 0-based index of ``name`` in :data:`CLASSES`.

    Raises:
        ValueError: if the name is not one of our classes.
    """
    try:
        return CLASSES.index(name)
    except ValueError:
        raise ValueError(f"unknown class {name!r}; known classes: {', '.join(CLASSES)}") from None


def category_id(name: str) -> int:
    """Return the fixed COCO category id (1..8) of class ``name``."""
    return class_index(name) + 1
