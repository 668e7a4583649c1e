"""depthssd-train end to end on tiny synthetic clips: config errors, checkpoints, bit-exact
resume, snapshots, EMA, the precision probe, divergence, memory carried through clips, and DDP
with two CPU processes on gloo."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import yaml
from safetensors.torch import load_file

from depthssd_core.checkpoint import load_model, read_metadata
from depthssd_core.config import ModelConfig
from depthssd_core.model import build_model
from depthssd_train.cli.train import main as train_main
from depthssd_train.losses import DepthSSDLoss, LossConfig
from depthssd_train.train import ClipTrainer, lr_factor, train
from depthssd_train.train_checkpoint import list_snapshots
from depthssd_train.train_config import TrainConfig, load_config
from depthssd_train.train_precision import choose_precision

TINY_MODEL = {"input_width": 160, "input_height": 96, "neck_dim": 32, "memory_dk": 8,
              "memory_dv": 8}


def tiny_overrides(run_dir, steps=2, extra=()):
    """Overrides of config/train/smoke.yaml for a tiny, fast run in ``run_dir``."""
    return [f"run_dir={run_dir}", f"schedule.0.steps={steps}", "schedule.0.batch_size=1",
            "schedule.0.clip_length=2", "data.synth_sequences=2",
            "data.synth_frames_per_sequence=3", "threads=1", "checkpoint_every=1", *extra]


def test_bad_config_key_fails_at_once_with_one_line(tmp_path, capsys):
    code = train_main(["--config", "config/train/smoke.yaml", "optim.lrr=0.1",
                       f"run_dir={tmp_path}/run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "optim.lrr" in err[0]
    assert not (tmp_path / "run").exists()  # nothing started
    code = train_main(["--config", "config/train/smoke.yaml", "loss.box_loss=l3"])
    assert code == 1 and "loss.box_loss" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"schedule\.3"):
        load_config("config/train/smoke.yaml", ["schedule.3.steps=1"])


def test_config_overrides_and_yaml_numbers():
    cfg = load_config("config/train/default.yaml", ["optim.lr=3e-4", "loss.weights.depth=2",
                                                    "model.overrides.neck_dim=64"])
    assert cfg.optim.lr == pytest.approx(3e-4)  # YAML 1.1 reads 3e-4 as text; we accept it
    assert cfg.loss.weights["depth"] == 2.0
    assert cfg.model.build_config().neck_dim == 64
    assert cfg.model.build_config().backbone == "mobilenetv4_conv_small"
    round_trip = TrainConfig.from_dict(cfg.to_dict())
    assert round_trip == cfg


def test_lr_schedule_warmup_and_cosine():
    cfg = load_config(None, ["schedule.0.steps=110", "optim.warmup_steps=10",
                             "optim.min_lr_ratio=0.1"])
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(10, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.1 + 0.9 * 0.5)  # half way down the cosine
    assert lr_factor(110, cfg) == pytest.approx(0.1)
    # With warm restarts a second stage starts its own warm-up and cosine.
    cfg = load_config(None, ["schedule=[{steps: 50}, {steps: 30}]", "optim.warmup_steps=10",
                             "optim.min_lr_ratio=0.1", "optim.restart_each_stage=true"])
    assert lr_factor(49, cfg) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 39 / 40)))
    assert lr_factor(50, cfg) == pytest.approx(0.1)  # first warm-up step of stage 2
    assert lr_factor(59, cfg) == pytest.approx(1.0)
    assert lr_factor(80, cfg) == pytest.approx(0.1)


def _weights(path):
    return load_model(path).state_dict()


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one_bit_for_bit(tmp_path):
    """Stop after 3 of 5 steps (mid-way through a rendered group: 2 windows per clip), resume,
    and compare every weight, the EMA and the raw ones, exactly (CPU, one thread)."""
    extra = ["schedule.0.crops_per_clip=2", "checkpoint_every=100", "ema.decay=0.5"]
    whole = load_config("config/train/smoke.yaml",
                        tiny_overrides(tmp_path / "whole", steps=5, extra=extra))
    train(whole, progress=False)
    parts = load_config("config/train/smoke.yaml",
                        tiny_overrides(tmp_path / "parts", steps=5, extra=extra))
    first = train(parts, progress=False, stop_after_steps=3)
    assert first["steps"] == 3 and first["stopped"] == "step limit"
    assert read_metadata(tmp_path / "parts" / "last.safetensors")["step"] == 3
    code = train_main(["--resume", str(tmp_path / "parts"), "--no-progress"])
    assert code == 0
    for name in ("last.safetensors", "last_raw.safetensors"):
        a, b = _weights(tmp_path / "whole" / name), _weights(tmp_path / "parts" / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key} differs"
    ema, raw = _weights(tmp_path / "whole" / "last.safetensors"), \
        _weights(tmp_path / "whole" / "last_raw.safetensors")
    assert any(not torch.equal(ema[k], raw[k]) for k in ema if ema[k].is_floating_point())


def test_snapshots_every_n_images_and_summary(tmp_path):
    run = tmp_path / "run"
    cfg = load_config("config/train/smoke.yaml", tiny_overrides(
        run, steps=4, extra=["snapshot_every_images=4"]))
    summary = train(cfg, progress=False)
    snaps = list_snapshots(run)
    # 2 images per step (1 clip of 2 frames): a snapshot after 4 and after 8 images.
    assert [n for n, _ in snaps] == [4, 8]
    assert read_metadata(snaps[0][1])["images_seen"] == 4
    last = _weights(run / "last.safetensors")
    assert all(torch.equal(v, _weights(snaps[-1][1])[k]) for k, v in last.items())
    assert summary["images_seen"] == 8 and summary["precision"] == "fp32"
    assert 0.0 <= summary["data_wait_share"] < 1.0 and summary["images_per_s"] > 0
    assert summary["cpu_s"] > 0


def test_ema_update_follows_timm_warmup_decay():
    """After one update at step t the EMA is ``d * ema + (1 - d) * model`` with the warm-up
    decay ``min(decay, 1 - (1 + t) ** -0.75)``."""
    from timm.utils import ModelEmaV3

    model = torch.nn.Linear(3, 2)
    ema = ModelEmaV3(model, decay=0.99, use_warmup=True, warmup_power=0.75)
    before = ema.module.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=11)  # timm counts from step - 1 = 10
    d = min(0.99, 1 - (1 + 10) ** -0.75)
    torch.testing.assert_close(ema.module.weight, d * before + (1 - d) * model.weight)


def test_precision_auto_probes_and_names_its_choice():
    trainer = _tiny_trainer()
    before = {k: v.clone() for k, v in trainer.state_dict().items()}
    choice = choose_precision("auto", trainer, torch.device("cpu"), 1, 96, 160, repeats=1)
    assert choice.name in ("fp32", "bf16") and choice.how == "probe"
    assert choice.fp32_s > 0 and choice.bf16_s > 0
    assert (choice.dtype is torch.bfloat16) == (choice.name == "bf16")
    assert choice.name in choice.describe() and "ms" in choice.describe()
    # The probe ran on a copy: BatchNorm statistics of the trainer are untouched.
    assert all(torch.equal(before[k], v) for k, v in trainer.state_dict().items())
    assert choose_precision("fp32", trainer, torch.device("cpu"), 1, 96, 160).dtype is None


def test_train_checkpoint_and_resume(tmp_path):
    run = tmp_path / "run"
    code = train_main(["--config", "config/train/smoke.yaml", "--no-progress",
                       *tiny_overrides(run, steps=2)])
    assert code == 0
    for name in ("last.safetensors", "optimizer.safetensors", "config.yaml"):
        assert (run / name).is_file()
    meta = read_metadata(run / "last.safetensors")
    assert meta["step"] == 2 and meta["train_config"]["schedule"][0]["steps"] == 2
    model = load_model(run / "last.safetensors")
    assert model.cfg.neck_dim == 32
    opt = load_file(str(run / "optimizer.safetensors"))
    assert any(k.endswith(".exp_avg") for k in opt)
    assert all(torch.isfinite(v.float()).all() for v in opt.values())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # Resume for one more step: it starts at step 2 and changes the weights.
    code = train_main(["--resume", str(run), "--no-progress", "schedule.0.steps=3"])
    assert code == 0
    assert read_metadata(run / "last.safetensors")["step"] == 3
    after = load_model(run / "last.safetensors").state_dict()
    changed = [k for k in before if before[k].dtype.is_floating_point
               and not torch.equal(before[k], after[k])]
    assert changed
    # Continue the finished run with a new config that adds a stage (warm restart).
    longer = tmp_path / "longer.yaml"
    data = yaml.safe_load((run / "config.yaml").read_text())
    data["schedule"].append(dict(data["schedule"][0], steps=1))
    data["optim"]["restart_each_stage"] = True
    longer.write_text(yaml.safe_dump(data))
    code = train_main(["--resume", str(run), "--config", str(longer), "--no-progress"])
    assert code == 0
    meta = read_metadata(run / "last.safetensors")
    assert meta["step"] == 4 and len(meta["train_config"]["schedule"]) == 2


def test_divergence_stops_with_diagnosis_and_keeps_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    # An absurd learning rate blows the weights up after the first update.
    code = train_main(["--config", "config/train/smoke.yaml", "--no-progress",
                       *tiny_overrides(run, steps=6, extra=["optim.lr=1e12",
                                                            "optim.warmup_steps=0",
                                                            "optim.grad_clip_norm=1e30"])])
    err = capsys.readouterr().err
    assert code == 3
    line = [x for x in err.splitlines() if "diverged" in x]
    assert len(line) == 1
    assert "loss term '" in line[0] or "gradient norm" in line[0]
    step = int(line[0].split(" at step ")[1].split()[0].rstrip(";"))
    assert 2 <= step <= 6
    # The checkpoint on disk is the one written before the bad step, intact and loadable.
    meta = read_metadata(run / "last.safetensors")
    assert meta["step"] < step
    load_model(run / "last.safetensors")


def _tiny_trainer():
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY_MODEL))
    return ClipTrainer(model, DepthSSDLoss(LossConfig(), 1000.0))


def _frame(batch=1, h=96, w=160, labelled=True):
    return {
        "image": torch.rand(batch, 3, h, w, requires_grad=True),
        "depth_m": torch.rand(batch, 1, h, w) * 30 + 2,
        "depth_valid": torch.ones(batch, 1, h, w, dtype=torch.bool),
        "intrinsics": torch.tensor([[80.0, 80.0, 80.0, 48.0]] * batch),
        "boxes_xyxy": [torch.tensor([[20.0, 20.0, 60.0, 50.0]])] * batch,
        "labels": [torch.tensor([1])] * batch,
        "has_boxes": torch.full((batch,), labelled),
        "has_depth": torch.full((batch,), labelled),
    }


def test_memory_carries_gradient_through_the_clip_and_resets_cut_it():
    trainer = _tiny_trainer()
    trainer.train()
    # Frame 0 has no labels, so its image can only influence the loss through the memory
    # carried into frame 1.
    frames = [_frame(labelled=False), _frame(labelled=True)]
    loss, _ = trainer(frames, torch.zeros(2, 1, dtype=torch.bool))
    loss.backward()
    assert frames[0]["image"].grad.abs().sum() > 0
    frames = [_frame(labelled=False), _frame(labelled=True)]
    loss, _ = trainer(frames, torch.ones(2, 1, dtype=torch.bool))  # reset before frame 1
    loss.backward()
    assert frames[0]["image"].grad is None or frames[0]["image"].grad.abs().sum() == 0
    assert frames[1]["image"].grad.abs().sum() > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, overrides: list[str], out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    cfg = load_config("config/train/smoke.yaml", overrides)
    summary = train(cfg, progress=False)
    model = load_model(cfg.run_dir + "/last.safetensors") if rank == 0 else None
    flat = torch.cat([p.detach().flatten() for p in summary["model"].parameters()])
    np.save(f"{out}/rank{rank}.npy", flat.numpy())
    if model is not None:
        saved = torch.cat([p.detach().flatten() for p in model.parameters()])
        np.save(f"{out}/saved.npy", saved.numpy())
    import torch.distributed as dist

    dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_cpu_processes_gloo(tmp_path):
    overrides = tiny_overrides(tmp_path / "run", steps=2)
    mp.start_processes(_ddp_worker, args=(2, _free_port(), overrides, str(tmp_path)), nprocs=2,
                       join=True, start_method="spawn")
    r0, r1 = np.load(tmp_path / "rank0.npy"), np.load(tmp_path / "rank1.npy")
    saved = np.load(tmp_path / "saved.npy")
    # Different data on each rank, identical weights after synchronised steps.
    np.testing.assert_array_equal(r0, r1)
    np.testing.assert_array_equal(r0, saved)
    assert math.isfinite(float(np.abs(r0).sum()))


def test_ranks_get_disjoint_groups_through_the_distributed_sampler():
    """Two ranks of one stage see different sequences; each rank's stream restarted at a step
    continues with exactly the batch it would have had."""
    from depthssd_train.train_data import DistInfo, build_loader

    cfg = load_config("config/train/smoke.yaml", tiny_overrides(
        "unused", steps=4, extra=["data.synth_sequences=8", "data.sequences_per_group=1"]))
    model_cfg = cfg.model.build_config()
    seqs = []
    for rank in (0, 1):
        loader = build_loader(cfg, 0, model_cfg, DistInfo(rank, 2))
        seqs.append({next(loader)[0]["sequence"][0] for _ in range(2)})
    assert not seqs[0] & seqs[1]
    full = build_loader(cfg, 0, model_cfg, DistInfo(1, 2))
    batches = [next(full) for _ in range(3)]
    resumed = next(build_loader(cfg, 0, model_cfg, DistInfo(1, 2), start_step=2))
    torch.testing.assert_close(resumed[1]["image"], batches[2][1]["image"], rtol=0, atol=0)
