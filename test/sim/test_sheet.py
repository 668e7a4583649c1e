"""The contact sheet tool of the synthetic world."""

from __future__ import annotations

import numpy as np

from depthssd_sim.sheet import contact_sheet, main


def test_contact_sheet_tiles_one_frame_per_seed(tmp_path):
    sheet = contact_sheet("heldout", count=3, width=96, height=54, tile_width=48, columns=2)
    assert sheet.shape == (2 * 27, 2 * 48, 3) and sheet.dtype == np.uint8
    assert not sheet[27:, 48:].any()  # the fourth tile is padding
    assert sheet[:27, :48].std() > 0 and sheet[:27, :48].tobytes() != sheet[:27, 48:].tobytes()
    out = tmp_path / "sheet.png"
    assert main(["--out", str(out), "--count", "2", "--width", "64", "--height", "36",
                 "--tile-width", "32"]) == 0
    assert out.stat().st_size > 0
