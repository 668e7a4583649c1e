"""Contact sheet of the synthetic world: one random frame from each of many world seeds.

Run: ``python -m depthssd_sim.sheet --out docs/synth_world_train.png`` (or ``--look heldout``).
Each tile is frame k (drawn per seed) of sequence "sheet" of world seed ``--first-seed + i``,
rendered at ``--width`` x ``--height`` with every randomization on, shrunk to ``--tile-width``
and captioned with its seed, sky, field of view and sensor aspect.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import cv2
import numpy as np

from .world import SyntheticWorld


def contact_sheet(look: str = "train", count: int = 24, first_seed: int = 0,
                  width: int = 640, height: int = 360, tile_width: int = 240,
                  columns: int = 6, draw_boxes: bool = False) -> np.ndarray:
    """RGB uint8 grid of ``count`` frames, one per world seed."""
    tiles = []
    for i in range(count):
        seed = first_seed + i
        world = SyntheticWorld(seed, width, height, look=look)
        index = int(np.random.default_rng(seed).integers(0, 60))
        frame = next(itertools.islice(world.sequence("sheet", index + 1), index, None))
        rgb = frame.rgb.copy()
        if draw_boxes:
            for obj in frame.objects:
                x1, y1, x2, y2 = (round(v) for v in obj.box_xyxy)
                cv2.rectangle(rgb, (x1, y1), (x2 - 1, y2 - 1), (255, 0, 255), 1)
        tile_h = round(tile_width * height / width)
        tile = cv2.resize(rgb, (tile_width, tile_h), interpolation=cv2.INTER_AREA)
        params = world.sequence_params("sheet")
        aspect = "" if params.sensor_aspect is None else \
            (" 4:3" if abs(params.sensor_aspect - 4 / 3) < 1e-6 else " 16:9")
        caption = f"{seed} {params.sky} {params.fov_deg:.0f}deg{aspect}"
        (text_w, text_h), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_PLAIN, 0.8, 1)
        cv2.rectangle(tile, (0, tile_h - text_h - 7), (text_w + 5, tile_h - 1), (0, 0, 0), -1)
        cv2.putText(tile, caption, (3, tile_h - 4), cv2.FONT_HERSHEY_PLAIN, 0.8,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + columns], axis=1) for r in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> int:
    """Write a contact sheet PNG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--look", choices=("train", "heldout"), default="train")
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--tile-width", type=int, default=240)
    parser.add_argument("--boxes", action="store_true", help="draw the visible boxes")
    args = parser.parse_args(argv)
    sheet = contact_sheet(args.look, args.count, args.first_seed, args.width, args.height,
                          args.tile_width, draw_boxes=args.boxes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), sheet[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {args.out}")
    print(f"{args.out}: {sheet.shape[1]}x{sheet.shape[0]}, {args.out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
