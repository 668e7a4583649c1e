"""Training configuration: dataclasses set by a YAML file and ``key=value`` overrides.

``depthssd-train --config config/train/default.yaml optim.lr=1e-3 schedule.0.steps=50`` loads
the YAML into :class:`TrainConfig`, applies the dotted overrides (list items by index) and
validates everything before any work starts; an unknown key or a bad value raises
``ValueError`` naming it. The resolved config is written next to every checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from depthssd_core.config import NAMED_CONFIGS, ModelConfig
from depthssd_train.losses import LossConfig


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

    ``source: synthetic`` renders clips on the fly with the synthetic world, sequence seeds
    ``synth_seed .. synth_seed + synth_sequences - 1`` (keep them disjoint from test seeds);
    ``source: folder`` reads a dataset written in the depthssd format (``path``, ``split``).
    """

    source: str = "synthetic"
    path: str = ""
    split: str = "train"
    synth_seed: int = 1000
    synth_sequences: int = 200
    synth_frames_per_sequence: int = 40
    # Rendering size; 0 renders at each stage's network input size (cheapest).
    synth_width: int = 0
    synth_height: int = 0
    # Fixed horizontal field of view, or null to draw one per sequence (60..110 degrees).
    fov_deg: float | None = None
    augment: bool = True
    num_workers: int = 0
    # Synthetic clips wait in a buffer of this many and leave it in random order, so a batch
    # mixes sequences.
    shuffle_buffer_clips: int = 16


@dataclass
class StageConfig:
    """One stage of the schedule: steps at one input resolution and clip shape."""

    steps: int = 100
    width: int = 640
    height: int = 360
    batch_size: int = 4
    clip_length: int = 4


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
    precision: str = "auto"  # auto (bf16 on GPUs that have it, else fp32), fp32, bf16
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default
    log_every: int = 10
    checkpoint_every: int = 200
    # A loss term above this (or not finite) stops training with a diagnosis.
    max_loss: float = 1.0e4
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
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
        need(self.precision in ("auto", "fp32", "bf16"), "precision",
             f"must be auto, fp32 or bf16, got {self.precision!r}")
        need(self.threads >= 0, "threads", "must be >= 0")
        need(self.log_every >= 1, "log_every", "must be >= 1")
        need(self.checkpoint_every >= 1, "checkpoint_every", "must be >= 1")
        need(self.max_loss > 0, "max_loss", "must be > 0")
        d = self.data
        need(d.source in ("synthetic", "folder"), "data.source",
             f"must be 'synthetic' or 'folder', got {d.source!r}")
        need(d.source != "folder" or bool(d.path), "data.path", "is required for a folder")
        need(d.synth_sequences >= 1, "data.synth_sequences", "must be >= 1")
        need(d.synth_frames_per_sequence >= 1, "data.synth_frames_per_sequence", "must be >= 1")
        need(d.synth_width >= 0 and d.synth_height >= 0, "data.synth_width",
             "synthetic image size must be >= 0 (0 = stage size)")
        need(d.fov_deg is None or 0 < d.fov_deg < 180, "data.fov_deg",
             "must be null or in (0, 180)")
        need(d.num_workers >= 0, "data.num_workers", "must be >= 0")
        need(d.shuffle_buffer_clips >= 0, "data.shuffle_buffer_clips", "must be >= 0")
        need(len(self.schedule) >= 1, "schedule", "needs at least one stage")
        for i, s in enumerate(self.schedule):
            for name in ("steps", "width", "height", "batch_size", "clip_length"):
                need(getattr(s, name) >= 1, f"schedule.{i}.{name}", "must be >= 1")
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
        need(0 <= self.temporal.reset_prob <= 1, "temporal.reset_prob", "must be in [0, 1]")
        try:
            self.loss.validate()
        except ValueError as err:
            raise ValueError(str(err)) from None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON friendly) of every value."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build and validate a config; unknown keys raise ``ValueError`` naming them."""
        cfg = _build(cls, data, "")
        cfg.validate()
        return cfg


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _build(cls: type, data: Any, prefix: str) -> Any:
    """Recursively build dataclass ``cls`` from ``data``, checking keys and scalar types."""
    where = prefix.rstrip(".") or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    types_ = _field_types(cls)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ValueError(f"unknown config key {prefix}{unknown[0]!s}"
                         f" (known under {where}: {', '.join(sorted(types_))})")
    values = {name: _convert(types_[name], value, f"{prefix}{name}")
              for name, value in data.items()}
    return cls(**values)


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        return [_convert(item_tp, v, f"{key}.{i}") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        _, val_tp = typing.get_args(tp)
        return {str(k): (v if val_tp is Any else _convert(val_tp, v, f"{key}.{k}"))
                for k, v in value.items()}
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _convert(inner[0], value, key) if len(inner) == 1 else value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads "1e-3" (no dot) as a string; accept it as the number it means.
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``dotted.key=value`` strings (values parsed as YAML) to a nested dict in place.

    List items are addressed by index (``schedule.0.steps=10``). Keys that do not exist are
    still set here; :meth:`TrainConfig.from_dict` then rejects them by name.

    Raises:
        ValueError: for an item without ``=`` or an index that does not exist.
    """
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        parts = key.split(".")
        if not key or any(not p for p in parts):
            raise ValueError(f"override {item!r} has an empty key")
        value = yaml.safe_load(raw) if raw.strip() else ""
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ValueError(f"override {key}: index {part!r} does not exist "
                                     f"(list of {len(node)})")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise ValueError(f"unknown config key {key} ({'.'.join(parts[:depth])} "
                                 "is not a section)")
    return data


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
    if "schedule" not in data:
        data["schedule"] = [dataclasses.asdict(StageConfig())]
    apply_overrides(data, list(overrides or []))
    return TrainConfig.from_dict(data)


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (what ``--resume`` and the model card read)."""
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
