"""Training: a tiny model overfits one clip; checkpoints, resume, previews, time limits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from fomm_kp import api
from fomm_kp.checkpoint import read_checkpoint
from fomm_kp.config import Config, builtin_config
from fomm_kp.errors import FommError
from fomm_kp.models import FOMM
from fomm_kp.progress import Update
from fomm_kp.runtime import Model
from fomm_kp.training.dataset import FramePairs, TrainingFrames
from fomm_kp.training.trainer import Trainer, autocast_context
from fomm_kp.video import resize_frame

from conftest import SyntheticClip, disc_frames


def tiny_config(**train: object) -> Config:
    """The tiny config without localisation (whole frames), with train fields overridden."""
    config = builtin_config("tiny")
    return dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, localize="off"),
        train=dataclasses.replace(config.train, **train),
    )


def disc_pairs(size: int = 32, seed: int = 0) -> FramePairs:
    frames, _ = disc_frames()
    small = np.stack([resize_frame(f, size) for f in frames])
    data = TrainingFrames(small, np.arange(len(small)), np.tile([0.0, 0.0, 64.0, 48.0], (len(small), 1)), 10.0, "disc")
    return FramePairs(data, min_gap=1, max_gap=6, flip=False, color_jitter=0.0, seed=seed)


def make_trainer(tmp_path: Path, config: Config | None = None) -> Trainer:
    torch.manual_seed(0)
    config = config or tiny_config()
    return Trainer(FOMM(config.model), config, disc_pairs(), torch.device("cpu"), tmp_path, meta={"video": "disc"})


@pytest.mark.slow
def test_tiny_model_overfits_a_synthetic_clip(tmp_path: Path) -> None:
    """The reconstruction loss on a moving textured disc falls by more than half in 60 steps."""
    config = tiny_config(learning_rate=1e-3, flip=False, color_jitter=0.0)
    trainer = make_trainer(tmp_path, config)
    losses = [trainer.step() for _ in range(60)]
    reconstruction = np.array([step["reconstruction"] for step in losses])
    assert np.isfinite([v for step in losses for v in step.values()]).all()
    assert set(losses[0]) >= {"reconstruction", "equivariance", "equivariance_jacobian", "background", "total"}
    first, last = reconstruction[:5].mean(), reconstruction[-5:].mean()
    assert last < 0.5 * first, (first, last)
    assert trainer.step_count == 60


def test_step_returns_finite_losses_and_changes_weights(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    losses = trainer.step()
    assert trainer.step_count == 1
    assert np.isfinite(list(losses.values())).all()
    assert losses["total"] == pytest.approx(sum(v for k, v in losses.items() if k != "total"), rel=1e-5)
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("detector.") for k in changed)
    assert any(k.startswith("generator.") for k in changed)


def test_preview_png_is_written(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path)
    trainer.step()
    path = trainer.write_preview(tmp_path / "preview.png")
    image = iio.imread(path)
    # Four pairs, one row each: source | driving | warped | reconstruction | keypoints, 2-px gaps.
    assert image.shape == (4 * 32, 5 * 32 + 4 * 2, 3)
    assert image.dtype == np.uint8 and image.std() > 5
    assert [p.name for p in tmp_path.iterdir()] == ["preview.png"]
    # Writing a preview does not change what training draws next.
    plain = make_trainer(tmp_path / "plain")
    plain.step()
    assert trainer.step() == plain.step()


def test_fit_writes_checkpoint_and_preview_and_reports_progress(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, tiny_config(preview_every=2, checkpoint_every=2))
    seen: list[Update] = []
    trainer.fit(steps=3, progress=seen.append)
    assert [p.done for p in seen] == [1, 2, 3]
    assert all(p.total == 3 and p.stage == "training" and "total" in p.losses for p in seen)
    assert seen[1].files == (tmp_path / "preview.png", tmp_path / "checkpoint.pt")
    assert seen[0].files == ()
    assert seen[2].files[-1] == tmp_path / "checkpoint.pt"  # always at the end
    assert {"checkpoint.pt", "preview.png"} <= {p.name for p in tmp_path.iterdir()}
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left
    assert read_checkpoint(tmp_path / "checkpoint.pt")[2] == 3


def test_fit_stops_at_the_time_limit(tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, tiny_config(preview_every=0))
    trainer.fit(steps=10_000, minutes=1e-9)
    assert trainer.step_count == 1
    assert (tmp_path / "checkpoint.pt").is_file()


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    config = tiny_config()
    trainer = make_trainer(tmp_path, config)
    trainer.step()
    trainer.step()
    path = trainer.save(tmp_path / "checkpoint.pt")
    loaded_config, states, step, meta = read_checkpoint(path)
    assert loaded_config == config
    assert step == 2
    assert meta["video"] == "disc" and set(meta["losses"]) >= {"reconstruction", "total"}
    for name in ("detector", "dense_motion", "generator", "background"):
        module = getattr(trainer.model, name)
        saved = states[name]
        assert saved.keys() == module.state_dict().keys()
        for key, value in module.state_dict().items():
            assert torch.equal(saved[key], value), (name, key)
    assert states["optimizer"]["state"]  # Adam moments travel too
    # The loaded model computes what the trained one computes.
    model = Model.load(path, device="cpu")
    assert model.step == 2 and model.config == config
    images = torch.rand(3, 3, 32, 32)
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model.detector(images)
        got = model.network.detector(images)
    assert torch.allclose(expected.keypoints, got.keypoints)
    assert torch.allclose(expected.jacobians, got.jacobians)


def test_resume_continues_the_step_count(tmp_path: Path, disc_clip: SyntheticClip) -> None:
    out = tmp_path / "run"
    first = api.train(disc_clip.path, out, config=tiny_config(), steps=2, device="cpu")
    assert first.step == 2
    _, states_2, step_2, meta_2 = read_checkpoint(out / "checkpoint.pt")
    assert step_2 == 2 and meta_2["num_training_frames"] == 24
    assert (out / "preview.png").is_file()

    resumed = api.train(disc_clip.path, out, steps=3, existing="resume", device="cpu")
    assert resumed.step == 3
    config_3, states_3, step_3, _ = read_checkpoint(out / "checkpoint.pt")
    assert step_3 == 3 and config_3.train.steps == 3
    assert config_3.model == tiny_config().model  # the checkpoint's config, not the default
    # Adam's step counters continued from the checkpoint.
    assert all(int(s["step"]) == 3 for s in states_3["optimizer"]["state"].values())
    # The weights continued too: one more Adam step moves each weight by about the learning rate,
    # while a fresh initialisation would be far away.
    lr = tiny_config().train.learning_rate
    for key, value in states_3["detector"].items():
        if value.dtype.is_floating_point and "running" not in key:
            assert (value - states_2["detector"][key]).abs().max() <= 3 * lr, key

    with pytest.raises(FommError, match="nothing to do"):
        api.train(disc_clip.path, out, steps=3, existing="resume", device="cpu")


def test_resume_without_checkpoint_is_an_error(tmp_path: Path, disc_clip: SyntheticClip) -> None:
    with pytest.raises(FommError, match="checkpoint not found"):
        api.train(disc_clip.path, tmp_path / "empty", existing="resume")
    assert not (tmp_path / "empty").exists()


def test_training_is_reproducible_with_a_seed(tmp_path: Path, disc_clip: SyntheticClip) -> None:
    a = api.train(disc_clip.path, tmp_path / "a", config=tiny_config(), steps=2, seed=5, device="cpu")
    b = api.train(disc_clip.path, tmp_path / "b", config=tiny_config(), steps=2, seed=5, device="cpu")
    for (key, x), y in zip(a.network.state_dict().items(), b.network.state_dict().values()):
        assert torch.equal(x, y), key


def test_autocast_context_off_is_a_no_op() -> None:
    with autocast_context(torch.device("cpu"), enabled=False):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_bf16_autocast_step_is_finite(tmp_path: Path) -> None:
    config = tiny_config(mixed_precision=True)
    trainer = make_trainer(tmp_path, config)
    losses = trainer.step()  # bf16 where the CPU supports it, fp32 otherwise
    assert np.isfinite(list(losses.values())).all()


def test_trainer_writes_animation_preview(tiny_model, tmp_path, rng):
    size = tiny_model.config.model.image_size
    frames = rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    data = TrainingFrames(frames, np.arange(8), np.tile([0, 0, size, size], (8, 1)), 10.0, "synthetic")
    pairs = FramePairs(data, 1, 3, flip=False, color_jitter=0.0)
    trainer = Trainer(tiny_model.network, tiny_model.config, pairs, torch.device("cpu"), tmp_path)
    path = trainer.write_animation_preview(tmp_path / "animation.png")
    image = iio.imread(path)
    assert image.shape == (2 * size + 2, 6 * size + 5 * 2, 3)
    assert trainer.model.training  # the preview hands the model back in training mode


def test_foreground_prior_warp_term_and_a_finer_detector_train_end_to_end(tmp_path: Path, disc_clip: SyntheticClip) -> None:
    """api.train with loss.foreground and loss.warp on and the detector at twice the reconstruction's size."""
    base = tiny_config(preview_every=1)
    config = dataclasses.replace(
        base, loss=dataclasses.replace(base.loss, foreground=1.0, warp=1.0),
        data=dataclasses.replace(base.data, foreground="on"),
        model=dataclasses.replace(base.model, image_size=16, detector=dataclasses.replace(
            base.model.detector, input_size=32, head_kernel=3)))
    model = api.train(disc_clip.path, tmp_path / "run", config=config, steps=2, device="cpu")
    losses = read_checkpoint(tmp_path / "run" / "checkpoint.pt").meta["losses"]
    assert 0.0 <= losses["foreground"] <= 1.0 and np.isfinite(losses["total"])
    assert losses["warp"] > 0 and 0.0 <= losses["on_subject"] <= 1.0
    assert (tmp_path / "run" / "preview.png").is_file()
    detections = model.detect(disc_clip.frames[:2])
    assert detections.keypoints.shape == (2, config.model.detector.num_keypoints, 2)
