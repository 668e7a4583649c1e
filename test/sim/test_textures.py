"""Procedural texture families of the synthetic world."""

from __future__ import annotations

import numpy as np
import pytest

from depthssd_sim import scene
from depthssd_sim.textures import (
    FAMILIES,
    GROUND_FAMILIES,
    HELDOUT_ONLY,
    SLOT_FAMILIES,
    texture_bank,
)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_is_a_positive_tile_of_mean_one(name):
    tile = FAMILIES[name](np.random.default_rng(0), True)
    assert tile.shape == (256, 256) and tile.dtype == np.float32
    assert tile.min() > 0 and tile.mean() == pytest.approx(1.0, rel=1e-4)
    assert tile.std() > 0.005  # a pattern, not a constant


def test_held_out_families_are_never_in_the_training_slots():
    train = {n for slots in (SLOT_FAMILIES["train"], GROUND_FAMILIES["train"])
             for names in slots.values() for n in names}
    assert HELDOUT_ONLY and not HELDOUT_ONLY & train
    assert {"dots", "diagonal", "cells", "veins"} <= HELDOUT_ONLY
    for look in ("train", "heldout"):
        assert set(SLOT_FAMILIES[look]) == set(range(scene.NUM_TEXTURES)) - {scene.TEX_FLAT}


def test_bank_is_deterministic_and_flat_stays_flat():
    a, ga, names = texture_bank(np.random.default_rng(3), "train", False)
    b, gb, _ = texture_bank(np.random.default_rng(3), "train", False)
    assert np.array_equal(a, b) and np.array_equal(ga, gb)
    assert np.all(a[scene.TEX_FLAT] == 1.0)
    assert a.shape == (scene.NUM_TEXTURES, 256, 256) and ga.shape[0] == scene.SKY_SLOT0
    assert not set(names.values()) & HELDOUT_ONLY
