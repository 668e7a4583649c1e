"""``depthssd-data``: make, check, look at and import depthssd datasets.

Subcommands::

    depthssd-data synth --out DIR --split train --sequences N --frames M --seed S
                        [--width W --height H --fov DEG --look train|heldout
                         --camera-height M --camera-pitch-deg D --camera-roll-deg D
                         --sensor-aspect 4:3 --sky NAME --no-shadows --no-camera-effects
                         --no-distractors --world-options JSON]
    depthssd-data validate DIR [--split NAME]
    depthssd-data preview DIR [--out PNG] [--split NAME] [--frames N]
    depthssd-data import-bag BAG --out DIR [--split NAME] [--image-topic T --depth-topic T
                             --info-topic T --tolerance-ms MS]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from depthssd_train.cli import run_cli

PROG = "depthssd-data"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="render a split with the synthetic world")
    synth.add_argument("--out", type=Path, required=True, help="dataset root")
    synth.add_argument("--split", default="train")
    synth.add_argument("--sequences", type=int, required=True, help="number of sequences")
    synth.add_argument("--frames", type=int, required=True, help="frames per sequence")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--width", type=int, default=640)
    synth.add_argument("--height", type=int, default=360)
    synth.add_argument("--fov", type=float, default=None,
                       help="horizontal field of view, deg (default: drawn per sequence)")
    synth.add_argument("--look", choices=("train", "heldout"), default=None,
                       help="heldout also draws the appearance and shape families training "
                            "never sees (docs/ARCHITECTURE.md)")
    synth.add_argument("--camera-height", type=float, default=None,
                       help="camera height, m (default: drawn per sequence)")
    synth.add_argument("--camera-pitch-deg", type=float, default=None,
                       help="downward pitch, deg (default: drawn; a fixed pitch is level)")
    synth.add_argument("--camera-roll-deg", type=float, default=None,
                       help="roll, deg (default: drawn when the pitch is)")
    synth.add_argument("--sensor-aspect", default=None,
                       help="aspect of the camera rendered into WxH, e.g. 4:3 (default: drawn "
                            "from 16:9 and 4:3 when --fov is not given)")
    synth.add_argument("--sky", default=None, help="force a sky type (default: drawn)")
    synth.add_argument("--no-shadows", action="store_true", help="no cast shadows")
    synth.add_argument("--no-camera-effects", action="store_true",
                       help="plain camera response (no white balance, vignette, tone curve, "
                            "blur or JPEG draws)")
    synth.add_argument("--no-distractors", action="store_true",
                       help="no street furniture, cones or barriers")
    synth.add_argument("--world-options", default=None,
                       help="JSON object of further SyntheticWorld options (WorldConfig "
                            "fields), e.g. '{\"fov_range_deg\": [60, 100]}'")
    synth.add_argument("--overwrite", action="store_true", help="replace an existing split")
    synth.add_argument("--append", action="store_true",
                       help="add the new sequences to an existing split")
    synth.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    validate = sub.add_parser("validate", help="check a dataset and list every bad file")
    validate.add_argument("root", type=Path)
    validate.add_argument("--split", action="append", help="only this split (repeatable)")

    preview = sub.add_parser("preview", help="write a PNG contact sheet")
    preview.add_argument("root", type=Path)
    preview.add_argument("--out", type=Path, help="PNG path (default ROOT/preview_<split>.png)")
    preview.add_argument("--split")
    preview.add_argument("--frames", type=int, default=8)

    bag = sub.add_parser("import-bag", help="import a carla-ros-bridge rosbag2 recording")
    bag.add_argument("bag", type=Path)
    bag.add_argument("--out", type=Path, required=True)
    bag.add_argument("--split", default="train")
    bag.add_argument("--sequence", help="sequence name (default: the bag's folder name)")
    bag.add_argument("--image-topic", default="/carla/ego_vehicle/rgb_front/image")
    bag.add_argument("--depth-topic", default="/carla/ego_vehicle/depth_front/image")
    bag.add_argument("--info-topic", default="/carla/ego_vehicle/rgb_front/camera_info")
    bag.add_argument("--tolerance-ms", type=float, default=10.0,
                     help="largest stamp difference between paired RGB and depth")
    bag.add_argument("--overwrite", action="store_true", help="replace an existing split")
    bag.add_argument("--append", action="store_true",
                     help="add the bag as a new sequence of an existing split")
    return parser


def _world_options(args: argparse.Namespace) -> dict:
    """The SyntheticWorld keyword arguments of the synth flags (JSON options first)."""
    import json
    import math

    options: dict = {}
    if args.world_options:
        try:
            options = json.loads(args.world_options)
        except json.JSONDecodeError as err:
            raise ValueError(f"--world-options is not valid JSON: {err}") from None
        if not isinstance(options, dict):
            raise ValueError("--world-options must be a JSON object")
    flags = {"fov_deg": args.fov, "look": args.look,
             "camera_height_m": args.camera_height,
             "camera_pitch_rad": None if args.camera_pitch_deg is None
             else math.radians(args.camera_pitch_deg),
             "camera_roll_rad": None if args.camera_roll_deg is None
             else math.radians(args.camera_roll_deg),
             "sensor_aspect": args.sensor_aspect, "sky": args.sky,
             "shadows": False if args.no_shadows else None,
             "camera_effects": False if args.no_camera_effects else None,
             "distractors": False if args.no_distractors else None}
    options.update({k: v for k, v in flags.items() if v is not None})
    return options


def _synth_frames(args: argparse.Namespace) -> Iterator:
    from depthssd_sim import SyntheticWorld
    from depthssd_train.dataset.format import frame_from_synth

    world = SyntheticWorld(seed=args.seed, width=args.width, height=args.height,
                           **_world_options(args))
    for k in range(args.sequences):
        for frame in world.sequence(f"{args.split}{args.seed:04d}_{k:04d}", args.frames):
            yield frame_from_synth(frame)


def _cmd_synth(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from depthssd_train.dataset.writer import write_split

    if args.sequences < 1 or args.frames < 1:
        raise ValueError("--sequences and --frames must be at least 1")
    from depthssd_sim import SyntheticWorld

    # Check the world's arguments before a split is created or replaced.
    SyntheticWorld(seed=args.seed, width=args.width, height=args.height,
                   **_world_options(args))
    total = args.sequences * args.frames
    frames = tqdm(_synth_frames(args), total=total, desc=f"synth {args.split}", unit="frame",
                  disable=args.no_progress, file=sys.stderr)
    count = write_split(args.out, args.split, frames, overwrite=args.overwrite,
                        append=args.append)
    print(f"wrote {count} frames to {args.out} (split {args.split})")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from depthssd_train.dataset.validate import format_problems, validate_dataset

    problems = validate_dataset(args.root, args.split)
    if problems:
        print(f"{PROG}: {len(problems)} problem(s) in {args.root}:", file=sys.stderr)
        print(format_problems(problems, limit=200), file=sys.stderr)
        return 1
    print(f"{args.root}: ok")
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from depthssd_train.dataset.format import list_splits
    from depthssd_train.dataset.preview import write_preview

    split = args.split or next(iter(list_splits(args.root)), None)
    if split is None:
        raise ValueError(f"{args.root}: no split index found (meta/index_*.csv)")
    out = args.out or args.root / f"preview_{split}.png"
    print(write_preview(args.root, out, split, max_frames=args.frames))
    return 0


def _cmd_import_bag(args: argparse.Namespace) -> int:
    from depthssd_train.dataset.bag_import import import_bag

    count = import_bag(args.bag, args.out, split=args.split, sequence=args.sequence,
                       image_topic=args.image_topic, depth_topic=args.depth_topic,
                       info_topic=args.info_topic, tolerance_s=args.tolerance_ms / 1000.0,
                       overwrite=args.overwrite, append=args.append)
    print(f"imported {count} frames from {args.bag} into {args.out} (split {args.split})")
    return 0


_COMMANDS = {"synth": _cmd_synth, "validate": _cmd_validate, "preview": _cmd_preview,
             "import-bag": _cmd_import_bag}


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    return _COMMANDS[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``depthssd-data``; returns the exit code."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
