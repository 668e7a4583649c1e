"""Training configuration: dataclasses read by OmegaConf from a YAML file plus overrides.

``depthssd-train --config config/train/default.yaml optim.lr=1e-3 schedule.0.steps=50`` merges
the YAML into the :class:`TrainConfig` schema with OmegaConf (structured configs: unknown keys
and values of the wrong type are rejected by name), applies the dotted overrides (list items by
index, values written as YAML) and validates the value ranges before any work starts; every
error is one ``ValueError`` naming the key. The resolved config is written next to every
checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from depthssd_core.config import NAMED_CONFIGS, ModelConfig
from depthssd_train.losses import LossConfig

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class ModelSection:
    """Which network to train."""

    name: str = "conv_small"  # a key of depthssd_core.config.NAMED_CONFIGS
    overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields to change
    init_from: str = ""  # optional checkpoint to start from (weights only)

    def build_config(self) -> ModelConfig:
        """The resolved :class:`ModelConfig` (named configuration + overrides)."""
        base = ModelConfig.named(self.name).to_dict()
        base.update(self.overrides)
        try:
            return ModelConfig.from_dict(base)
        except ValueError as err:
            raise ValueError(f"model.overrides: {err}") from None


@dataclass
class DataConfig:
    """Where training frames come from.

    ``source: synthetic`` renders clips on the fly with ``SyntheticWorld(seed=synth_seed,
    **world)``, sequence ids ``train00000 .. train{synth_sequences - 1}``; ``world`` is passed
    through as keyword arguments (``width``, ``height``, ``fov_deg``, ...), so a new world option
    needs no change here. ``source: folder`` reads a dataset written in the depthssd format
    (``path``, ``split``).
    """

    source: str = "synthetic"
    path: str = ""
    split: str = "train"
    synth_seed: int = 1000
    synth_sequences: int = 200
    synth_frames_per_sequence: int = 40
    world: dict[str, Any] = field(default_factory=lambda: {"width": 640, "height": 360})
    # Sequences rendered together; their clips are shuffled into the batches of the group.
    sequences_per_group: int = 4
    augment: bool = True
    num_workers: int = 0


@dataclass
class StageConfig:
    """One stage of the schedule: steps at one network input (crop) size and clip shape.

    ``width`` x ``height`` is what the network sees in this stage. Frames are first scaled to
    the model's native scale (``ModelConfig.input_width/height`` covers the rendered frame)
    times a factor drawn from ``scale_range``, then a ``width`` x ``height`` window is cut: a
    stage smaller than the model input trains on native-scale crops. ``crops_per_clip`` windows
    are cut from every rendered clip (each window shared by the clip's frames).
    """

    steps: int = 100
    width: int = 640
    height: int = 360
    batch_size: int = 4
    clip_length: int = 4
    scale_range: list[float] = field(default_factory=lambda: [0.9, 1.4])
    crops_per_clip: int = 1


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay over all stages (or per stage)."""

    lr: float = 2e-3
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05  # final lr = lr * min_lr_ratio
    grad_clip_norm: float = 5.0
    # Warm restarts (SGDR): each schedule stage gets its own warm-up and cosine decay, so a
    # finished run can be continued by a new stage (``--resume RUN --config MORE.yaml``).
    restart_each_stage: bool = False


@dataclass
class EmaConfig:
    """Exponential moving average of the weights (timm ``ModelEmaV3``), evaluated and shipped.

    With warm-up the decay at optimizer step t is ``min(decay, 1 - (1 + t / gamma) ** -power)``,
    so early averages are not dominated by the random initialisation.
    """

    enabled: bool = True
    decay: float = 0.999
    warmup: bool = True
    warmup_gamma: float = 1.0
    warmup_power: float = 0.75


@dataclass
class TemporalConfig:
    """Truncated back-propagation through clips with occasional memory resets."""

    # Probability, per sample and frame after the first, of feeding the initial state instead
    # of the carried one, so the network also learns to work right after a reset.
    reset_prob: float = 0.1


@dataclass
class TrainConfig:
    """Everything ``depthssd-train`` needs; see ``config/train/*.yaml``."""

    run_dir: str = "runs/train"
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    # auto: a short probe times the model under bf16 autocast and FP32 on this machine and
    # keeps the faster (logged); fp32 or bf16 force one.
    precision: str = "auto"
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    log_every: int = 10
    checkpoint_every: int = 200
    # Keep a copy of the shipped (EMA) weights every this many training images in
    # ``snapshots/`` for the learning curve (0: none).
    snapshot_every_images: int = 0
    # A loss term above this (or not finite) stops training with a diagnosis.
    max_loss: float = 1.0e4
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    schedule: list[StageConfig] = field(default_factory=lambda: [StageConfig()])

    @property
    def total_steps(self) -> int:
        """Optimizer steps over all stages."""
        return sum(stage.steps for stage in self.schedule)

    def stage_start(self, index: int) -> int:
        """First optimizer step of stage ``index``."""
        return sum(stage.steps for stage in self.schedule[:index])

    def stage_at(self, step: int) -> tuple[int, StageConfig]:
        """(index, stage) that optimizer step ``step`` (0-based) belongs to."""
        end = 0
        for i, stage in enumerate(self.schedule):
            end += stage.steps
            if step < end:
                return i, stage
        return len(self.schedule) - 1, self.schedule[-1]

    def images_before(self, step: int) -> int:
        """Training images (frames, one rank) seen before optimizer step ``step``."""
        seen, start = 0, 0
        for stage in self.schedule:
            steps = min(stage.steps, max(0, step - start))
            seen += steps * stage.batch_size * stage.clip_length
            start += stage.steps
        return seen

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first key whose value cannot work."""
        def need(ok: bool, key: str, what: str) -> None:
            if not ok:
                raise ValueError(f"{key}: {what}")

        need(self.model.name in NAMED_CONFIGS, "model.name",
             f"{self.model.name!r} is not one of {sorted(NAMED_CONFIGS)}")
        self.model.build_config()
        need(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda"), "device",
             f"must be auto, cpu or cuda[:N], got {self.device!r}")
        need(self.precision in PRECISIONS, "precision",
             f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        need(self.threads >= 0, "threads", "must be >= 0")
        need(self.log_every >= 1, "log_every", "must be >= 1")
        need(self.checkpoint_every >= 1, "checkpoint_every", "must be >= 1")
        need(self.snapshot_every_images >= 0, "snapshot_every_images", "must be >= 0")
        need(self.max_loss > 0, "max_loss", "must be > 0")
        d = self.data
        need(d.source in ("synthetic", "folder"), "data.source",
             f"must be 'synthetic' or 'folder', got {d.source!r}")
        need(d.source != "folder" or bool(d.path), "data.path", "is required for a folder")
        need(d.synth_sequences >= 1, "data.synth_sequences", "must be >= 1")
        need(d.synth_frames_per_sequence >= 1, "data.synth_frames_per_sequence", "must be >= 1")
        need("seed" not in d.world, "data.world.seed", "is set by data.synth_seed")
        need(d.num_workers >= 0, "data.num_workers", "must be >= 0")
        need(d.sequences_per_group >= 1, "data.sequences_per_group", "must be >= 1")
        need(len(self.schedule) >= 1, "schedule", "needs at least one stage")
        for i, s in enumerate(self.schedule):
            for name in ("steps", "width", "height", "batch_size", "clip_length",
                         "crops_per_clip"):
                need(getattr(s, name) >= 1, f"schedule.{i}.{name}", "must be >= 1")
            need(len(s.scale_range) == 2 and 0 < s.scale_range[0] <= s.scale_range[1],
                 f"schedule.{i}.scale_range", f"must be [low, high] with 0 < low <= high, "
                 f"got {list(s.scale_range)}")
            if d.source == "synthetic":
                need(s.clip_length <= d.synth_frames_per_sequence, f"schedule.{i}.clip_length",
                     "is longer than data.synth_frames_per_sequence")
        o = self.optim
        need(math.isfinite(o.lr) and o.lr > 0, "optim.lr", "must be a positive number")
        need(o.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
        need(0 <= o.beta1 < 1 and 0 <= o.beta2 < 1, "optim.beta1", "betas must be in [0, 1)")
        need(o.warmup_steps >= 0, "optim.warmup_steps", "must be >= 0")
        need(0 <= o.min_lr_ratio <= 1, "optim.min_lr_ratio", "must be in [0, 1]")
        need(o.grad_clip_norm > 0, "optim.grad_clip_norm", "must be > 0")
        need(0 < self.ema.decay < 1, "ema.decay", "must be in (0, 1)")
        need(self.ema.warmup_gamma > 0 and self.ema.warmup_power > 0, "ema.warmup_gamma",
             "warm-up gamma and power must be > 0")
        need(0 <= self.temporal.reset_prob <= 1, "temporal.reset_prob", "must be in [0, 1]")
        self.loss.validate()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON friendly) of every value."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build and validate a config; unknown keys or wrong types raise ``ValueError``."""
        return _resolve(data, [])


def _one_line(err: OmegaConfBaseException) -> str:
    """OmegaConf's message without its multi-line context, prefixed by the full key."""
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    key = getattr(err, "full_key", None)
    return f"{key}: {message}" if key and not message.startswith(str(key)) else message


def _resolve(data: dict[str, Any], overrides: list[str]) -> TrainConfig:
    """Merge ``data`` into the schema, apply ``key=value`` overrides, convert and validate."""
    schema = OmegaConf.structured(TrainConfig)
    try:
        merged = OmegaConf.merge(schema, data)
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not key=value")
            key, raw = (part.strip() for part in item.split("=", 1))
            if not key or any(not p for p in key.split(".")):
                raise ValueError(f"override {item!r} has an empty key")
            value = yaml.safe_load(raw) if raw else ""
            if OmegaConf.select(merged, key, default=_MISSING) is _MISSING:
                _check_parent(merged, key)
            # Mappings and lists go through OmegaConf's merge, which types them against the
            # schema (a list is replaced wholesale: ``schedule=[{steps: 50}, {steps: 30}]``).
            OmegaConf.update(merged, key, value, merge=isinstance(value, (dict, list)),
                             force_add=False)
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise ValueError(_one_line(err)) from None
    assert isinstance(cfg, TrainConfig)
    cfg.validate()
    return cfg


_MISSING = object()


def _check_parent(cfg: Any, key: str) -> None:
    """Name an override whose list index does not exist (OmegaConf would append or fail vaguely).

    Keys under free-form mappings (``model.overrides``, ``loss.weights``, ``data.world``) may be
    new; the schema rejects unknown keys of dataclass sections itself.
    """
    parts = key.split(".")
    node = cfg
    for depth, part in enumerate(parts[:-1]):
        node = node[int(part)] if OmegaConf.is_list(node) and part.isdigit() and \
            int(part) < len(node) else OmegaConf.select(node, part, default=None)
        if node is None:
            return
        nxt = parts[depth + 1]
        if OmegaConf.is_list(node) and (not nxt.isdigit() or int(nxt) >= len(node)):
            raise ValueError(f"override {key}: index {nxt!r} does not exist "
                             f"(list of {len(node)})")


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides.

    Missing sections take :class:`TrainConfig` defaults; an override for a list stage that the
    YAML does not define fails by name.

    Raises:
        ValueError: naming the file, key or value at fault.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"{path}: config file not found") from None
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: top level must be a mapping")
        data = loaded or {}
    return _resolve(data, list(overrides or []))


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (what ``--resume`` and the model card read)."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
