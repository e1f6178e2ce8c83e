"""Motion and frequency features on synthetic tracks with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fomm_kp.behaviour.features import Features, load_features, motion_features, save_features
from fomm_kp.behaviour.frequency import (
    dominant_frequency,
    wavelet_frequencies,
    wavelet_spectrogram,
    welch_window_features,
)
from fomm_kp.behaviour.plots import plot_keypoint_spectrogram
from fomm_kp.behaviour.signals import frame_signals, resolve_config
from fomm_kp.behaviour.windows import FeatureConfig, window_bounds
from fomm_kp.errors import FommError
from fomm_kp.tracks import Tracks


def make_tracks(keypoints: np.ndarray, fps: float = 30.0, frames: np.ndarray | None = None, jacobians=None) -> Tracks:
    """Tracks of one subject from keypoints ``(T, K, 2)``."""
    t, k, _ = keypoints.shape
    return Tracks(
        keypoints=keypoints[:, None].astype(np.float32),
        scores=np.ones((t, 1, k), np.float32),
        frame_indices=np.arange(t) if frames is None else frames,
        fps=fps,
        jacobians=None if jacobians is None else jacobians[:, None],
        keypoint_names=tuple(f"p{i}" for i in range(k)),
    )


def body(t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Three keypoints of a walking, turning body with a wiggling tip: ``(T, 3, 2)``."""
    heading = 0.4 * t + 0.3 * np.sin(1.3 * t)
    centre = np.stack([100 + 30 * t, 80 + 10 * np.sin(0.7 * t)], axis=1)
    axis = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    normal = np.stack([-axis[:, 1], axis[:, 0]], axis=1)
    tip = centre + 20 * axis + 4 * np.sin(2 * np.pi * 2.5 * t)[:, None] * normal
    kp = np.stack([tip, centre, centre - 25 * axis], axis=1)
    return kp + rng.normal(0, 0.2, kp.shape)


def column(feats: Features, name: str) -> np.ndarray:
    return feats.values[:, feats.names.index(name)]


def test_oscillation_at_3hz_has_dominant_frequency_3hz() -> None:
    fps, t = 30.0, np.arange(300) / 30.0
    kp = np.zeros((300, 3, 2))
    kp[:, 0] = [50, 50]
    kp[:, 1] = [80, 50]
    kp[:, 2] = np.stack([65 + 6 * np.sin(2 * np.pi * 3.0 * t), 70 + 0 * t], axis=1)
    for egocentric in (True, False):
        feats = motion_features(make_tracks(kp, fps), FeatureConfig(window_seconds=(0.5, 2.0), egocentric=egocentric))
        dom = column(feats, "p2.dominant_hz@2s")
        assert np.all(np.abs(dom - 3.0) < 0.1), dom
        # the 2-5 Hz band holds over 10x the power of the 5-15 Hz band
        assert np.all(column(feats, "p2.power[2-5Hz]@2s") > column(feats, "p2.power[5-15Hz]@2s") + 1)
        assert np.all(column(feats, "p2.spectral_entropy@2s") < 0.5)


def test_dominant_frequency_of_a_flat_spectrum_is_nan() -> None:
    freqs = np.linspace(0, 10, 11)
    assert np.isnan(dominant_frequency(freqs, np.zeros((11, 1)))[0])


def test_white_noise_has_high_spectral_entropy(rng: np.random.Generator) -> None:
    x = rng.normal(size=(600, 2))
    values, names = welch_window_features(x, 30.0, np.array([0, 300]), np.array([300, 600]), [(1, 5)], np.array([0, 0]))
    assert names[-1] == "spectral_entropy"
    assert np.all(values[:, -1] > 0.85)


def test_constant_velocity_has_zero_acceleration_and_jerk() -> None:
    t = np.arange(120) / 30.0
    start = np.array([[10.0, 20.0], [40.0, 20.0], [25.0, 45.0]])
    kp = start[None] + np.array([12.0, -5.0])[None, None] * t[:, None, None]
    feats = motion_features(make_tracks(kp))
    speed = np.hypot(12.0, -5.0)
    for p in ("p0", "p1", "p2"):
        assert np.allclose(column(feats, f"{p}.speed.mean@0.5s"), speed, atol=1e-3)
        assert np.all(np.abs(column(feats, f"{p}.accel.mean@0.5s")) < 1e-2)
        assert np.all(np.abs(column(feats, f"{p}.jerk.mean@0.5s")) < 1e-1)
    assert np.allclose(column(feats, "centroid.straightness@2s"), 1.0, atol=1e-3)
    # a rigid translation: pairwise distances do not change
    assert np.all(np.abs(column(feats, "p0-p1.dist_rate.absmean@0.5s")) < 1e-2)
    assert np.allclose(column(feats, "p0-p1.dist.mean@2s"), 30.0, atol=1e-3)


def test_speeds_are_in_pixels_per_second_for_any_frame_step() -> None:
    t = np.arange(0, 200, 2) / 30.0  # every second frame of a 30 fps video
    kp = np.stack([np.stack([10 + 60 * t, 5 + 0 * t], 1), np.stack([30 + 60 * t, 5 + 0 * t], 1)], axis=1)
    feats = motion_features(make_tracks(kp, fps=30.0, frames=np.arange(0, 200, 2)))
    assert np.allclose(column(feats, "p0.speed.mean@0.5s"), 60.0, atol=1e-2)
    assert feats.start_frames[0] == 0 and feats.end_frames[-1] == 200


def test_features_are_invariant_to_rotating_and_shifting_the_scene(rng: np.random.Generator) -> None:
    t = np.arange(240) / 30.0
    kp = body(t, rng)
    jac = np.tile(np.eye(2), (240, 3, 1, 1)) * (1 + 0.1 * np.sin(t))[:, None, None, None]
    angle = 0.9
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = kp @ rot.T + np.array([300.0, -40.0])
    moved_jac = np.einsum("ij,tkjl->tkil", rot, jac)
    a = motion_features(make_tracks(kp, jacobians=jac))
    b = motion_features(make_tracks(moved, jacobians=moved_jac))
    assert a.names == b.names
    assert np.allclose(a.values, b.values, atol=1e-2 * (1 + np.abs(a.values)), equal_nan=True)
    assert any(n.startswith("p0.rot_rate") for n in a.names)


def test_egocentric_velocity_sees_the_tip_wiggle_not_the_walk(rng: np.random.Generator) -> None:
    t = np.arange(240) / 30.0
    feats = motion_features(make_tracks(body(t, rng)), FeatureConfig(heading=("p2", "p1")))
    # body axis from the tail through the centre; the origin (centroid of the 3 points) shares a third
    # of the tip's sideways wiggle: in the body frame the tip moves 2/3 of it and the tail 1/3
    ratio = np.median(column(feats, "p0.vy.std@2s")) / np.median(column(feats, "p2.vy.std@2s"))
    assert 1.7 < ratio < 2.3
    # the walk itself (30 px/s forward) does not show in body-frame velocities
    assert np.median(np.abs(column(feats, "p2.vx.mean@2s"))) < 2.0
    assert np.median(column(feats, "p2.speed.mean@2s")) > 25.0


def test_short_gaps_are_interpolated_and_long_gaps_masked() -> None:
    t = np.arange(300) / 30.0
    kp = np.stack([np.stack([10 + 20 * t, 10 + 0 * t], 1), np.stack([40 + 20 * t, 10 + 0 * t], 1)], axis=1)
    gappy = kp.copy()
    gappy[100:105, 0] = np.nan  # 5 frames: filled (limit 0.5 s = 15 frames)
    gappy[200:260, 0] = np.nan  # 60 frames: stays missing
    config = FeatureConfig(window_seconds=(0.5,), stride_seconds=0.25, bands_hz=())
    clean = motion_features(make_tracks(kp), config)
    feats = motion_features(make_tracks(gappy), config)
    speed = column(feats, "p0.speed.mean@0.5s")
    inside_short = (feats.start_frames >= 95) & (feats.end_frames <= 110)
    assert np.allclose(speed[inside_short], column(clean, "p0.speed.mean@0.5s")[inside_short], atol=1e-3)
    inside_long = (feats.start_frames >= 200) & (feats.end_frames <= 260)
    assert inside_long.any() and np.all(np.isnan(speed[inside_long]))
    assert np.all(column(feats, "p0.missing.mean@0.5s")[inside_long] == 1.0)
    # the other keypoint is unaffected
    assert np.all(np.isfinite(column(feats, "p1.speed.mean@0.5s")))


def test_low_scores_count_as_missing() -> None:
    t = np.arange(60) / 30.0
    kp = np.stack([np.stack([10 + 20 * t, 0 * t], 1), np.stack([40 + 20 * t, 0 * t], 1)], axis=1)
    tracks = make_tracks(kp)
    scores = tracks.scores.copy()
    scores[:, 0, 0] = 0.1
    low = Tracks(tracks.keypoints, scores, tracks.frame_indices, tracks.fps, keypoint_names=tracks.keypoint_names)
    feats = motion_features(low, FeatureConfig(min_score=0.5, bands_hz=()))
    assert np.all(np.isnan(column(feats, "p0.speed.mean@0.5s")))


def test_windows_cover_every_frame_and_share_centres() -> None:
    config = FeatureConfig(window_seconds=(0.5, 2.0), stride_seconds=0.25)
    for rows in (3, 15, 16, 100, 101):
        (a0, b0), (a1, b1) = window_bounds(rows, 30.0, config)
        covered = np.zeros(rows, bool)
        for a, b in zip(a0, b0):
            covered[a:b] = True
        assert covered.all()
        assert np.all(b1 <= rows) and np.all(a1 >= 0)
        assert np.all(b1 - a1 == min(60, rows))  # full length (shifted inward at the ends)
        assert np.all((a1 <= a0) & (b1 >= b0))  # the slow window holds the fast one
        fits = (a1 > 0) & (b1 < rows)
        assert np.all(np.abs((a0 + b0)[fits] / 2 - (a1 + b1)[fits] / 2) <= 1.0)  # same centre where it fits


def test_short_clip_gives_windows() -> None:
    kp = np.random.default_rng(1).normal(50, 3, (6, 3, 2))
    feats = motion_features(make_tracks(kp, fps=15.0))
    assert feats.num_windows >= 1 and np.isfinite(feats.values).any()


def test_several_subjects_get_prefixed_columns(rng: np.random.Generator) -> None:
    t = np.arange(90) / 30.0
    kp = np.stack([body(t, rng), body(t, rng) + 200], axis=1)
    tracks = Tracks(kp.astype(np.float32), np.ones((90, 2, 3)), np.arange(90), 30.0, subject_names=("a", "b"))
    feats = motion_features(tracks)
    assert "a.kp0.speed.mean@0.5s" in feats.names and "b.kp0.speed.mean@0.5s" in feats.names


def test_heading_keypoints_and_unknown_names(rng: np.random.Generator) -> None:
    t = np.arange(90) / 30.0
    tracks = make_tracks(body(t, rng))
    feats = motion_features(tracks, FeatureConfig(heading=("p2", "p0")))
    # with the body axis from tail to tip the tip sits on +x
    assert np.all(column(feats, "p0.x.mean@0.5s") > 0)
    with pytest.raises(FommError, match="heading keypoint"):
        motion_features(tracks, FeatureConfig(heading=("tail", "p0")))


def test_resolve_config_picks_one_reference_for_all(rng: np.random.Generator) -> None:
    t = np.arange(90) / 30.0
    a, b = make_tracks(body(t, rng)), make_tracks(body(t, rng))
    config = resolve_config([a, b])
    assert config.heading_reference == "p2"  # the tail is farthest from the centroid
    assert motion_features(a, config).config["heading_reference"] == "p2"


def test_feature_config_round_trips_through_dict() -> None:
    config = FeatureConfig(window_seconds=(0.3, 1.0), heading=("a", "b"), wavelet_num_freqs=4)
    assert FeatureConfig.from_dict(config.to_dict()) == config
    with pytest.raises(FommError, match="feature config: unknown key .windows."):
        FeatureConfig.from_dict({"windows": 3})
    with pytest.raises(FommError):
        FeatureConfig(window_seconds=())


def test_wavelet_features_and_spectrogram_peak(rng: np.random.Generator) -> None:
    fps = 30.0
    t = np.arange(300) / fps
    signal = np.stack([5 * np.sin(2 * np.pi * 3 * t), rng.normal(0, 0.1, 300)], axis=1)
    freqs = wavelet_frequencies(0.5, 12, 16, fps)
    amp = wavelet_spectrogram(signal, fps, freqs)
    assert amp.shape == (300, 16, 2)
    peak = freqs[np.argmax(amp[100:200, :, 0].mean(axis=0))]
    assert abs(peak - 3.0) < 0.5
    signal[50:60, 1] = np.nan
    assert np.isfinite(wavelet_spectrogram(signal, fps, freqs)).all()
    kp = np.stack([np.stack([50 + 0 * t, 50 + 0 * t], 1), np.stack([60 + 4 * np.sin(2 * np.pi * 3 * t), 50 + 0 * t], 1)], 1)
    feats = motion_features(make_tracks(kp, fps), FeatureConfig(wavelet_num_freqs=5))
    assert sum(".wavelet[" in n for n in feats.names) == 2 * 2 * 5  # K keypoints x 5 freqs x 2 windows


def test_frame_signals(rng: np.random.Generator) -> None:
    t = np.arange(60) / 30.0
    sig = frame_signals(make_tracks(body(t, rng)))
    assert sig.values.shape == (60, len(sig.names))
    assert "p0.x" in sig.names and "centroid.speed" in sig.names and "heading.angvel" in sig.names


def test_features_save_load_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    t = np.arange(90) / 30.0
    feats = motion_features(make_tracks(body(t, rng)))
    back = load_features(save_features(feats, tmp_path / "f.npz"))
    assert back.names == feats.names and back.config == feats.config and back.fps == feats.fps
    assert np.array_equal(back.values, feats.values, equal_nan=True)
    assert np.array_equal(back.start_frames, feats.start_frames)
    save_features(feats, tmp_path / "f.csv")
    assert (tmp_path / "f.csv").read_text().startswith("start_frame,end_frame,")
    with pytest.raises(FommError):
        save_features(feats, tmp_path / "f.txt")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(FommError, match="not a fomm_kp features file"):
        load_features(tmp_path / "other.npz")


def test_spectrogram_png(tmp_path: Path, rng: np.random.Generator) -> None:
    t = np.arange(150) / 30.0
    path = plot_keypoint_spectrogram(make_tracks(body(t, rng)), tmp_path / "spec.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs() -> None:
    kp = np.zeros((10, 2, 2))
    with pytest.raises(FommError, match="increasing"):  # Tracks refuse repeated frames, so features never see them
        make_tracks(kp, frames=np.array([0, 1, 2, 2, 3, 4, 5, 6, 7, 8]))
    with pytest.raises(FommError):
        motion_features(kp)  # type: ignore[arg-type]
