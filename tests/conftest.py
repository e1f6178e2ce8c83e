"""Shared test set-up: one torch thread per test process (2-core machines), data paths, seeds."""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from fomm_kp.tracks import Tracks
from fomm_kp.video import VideoWriter

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency
    torch = None

# imageio's pyav plugin runs gc.collect() twice whenever it closes a video; with torch's ~175k
# objects alive that costs ~0.3 s per collection on this machine, i.e. most of the time of a
# short video test. Objects that exist now (modules, torch) never need collecting: freeze them,
# and again once every test module (and what it imports) is loaded.
gc.freeze()


def pytest_collection_finish(session: pytest.Session) -> None:
    gc.freeze()

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repo; skips the test when it is absent (a user's fresh clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# --------------------------------------------------------------------------------------------
# Synthetic videos with known ground truth.


@dataclass(frozen=True)
class SyntheticClip:
    """A video written to ``path`` and the frames it was made from.

    ``frames`` uint8 ``(T, H, W, 3)`` (before compression); ``centres`` float ``(T, 2)``: x, y pixel
    centre of the moving disc in each frame; ``radius`` in pixels.
    """

    path: Path
    frames: np.ndarray
    centres: np.ndarray
    radius: float
    fps: float

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])


def _smooth_texture(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Blocky random colour texture ``(H, W, 3)`` in [0, 1]."""
    coarse = rng.random((height // cell + 2, width // cell + 2, 3))
    return np.kron(coarse, np.ones((cell, cell, 1)))[:height, :width]


def disc_frames(
    num_frames: int = 24, width: int = 64, height: int = 48, radius: float = 8.0, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """A textured disc moving on a static textured background.

    Returns uint8 frames ``(T, H, W, 3)`` and the disc centre per frame ``(T, 2)`` (x, y pixels,
    top-left pixel centre = 0). The disc follows an ellipse inside the frame; its texture moves
    with it (it is sampled in disc coordinates).
    """
    rng = np.random.default_rng(seed)
    background = 0.15 + 0.35 * _smooth_texture(rng, height, width, 4)
    disc_texture = 0.55 + 0.45 * _smooth_texture(rng, 2 * int(radius) + 4, 2 * int(radius) + 4, 3)
    t = np.arange(num_frames) / max(num_frames, 1)
    cx = width / 2 - 0.5 + (width / 2 - radius - 3) * np.cos(2 * np.pi * t)
    cy = height / 2 - 0.5 + (height / 2 - radius - 3) * np.sin(2 * np.pi * t)
    centres = np.stack([cx, cy], axis=1)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for i, (x, y) in enumerate(centres):
        image = background.copy()
        dx, dy = xx - x, yy - y
        inside = dx**2 + dy**2 <= radius**2
        u = np.clip(np.round(dx + radius + 2).astype(int), 0, disc_texture.shape[1] - 1)
        v = np.clip(np.round(dy + radius + 2).astype(int), 0, disc_texture.shape[0] - 1)
        image[inside] = disc_texture[v[inside], u[inside]]
        frames[i] = np.round(255 * image).astype(np.uint8)
    return frames, centres


def write_video(path: Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    """Write uint8 frames ``(T, H, W, 3)`` with :class:`fomm_kp.video.VideoWriter`."""
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


@pytest.fixture(scope="session")
def disc_clip(tmp_path_factory: pytest.TempPathFactory) -> SyntheticClip:
    """A 24-frame 64×48 mp4 (10 fps) of a textured disc circling on a static textured background."""
    frames, centres = disc_frames()
    path = write_video(tmp_path_factory.mktemp("clips") / "disc.mp4", frames, fps=10.0)
    return SyntheticClip(path, frames, centres, 8.0, 10.0)


def write_zero_frame_video(path: Path) -> Path:
    """An ``.avi`` container with one video stream and no frames in it."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
        for packet in stream.encode(None):
            container.mux(packet)
    return Path(path)


# --------------------------------------------------------------------------------------------
# A small subject in a large arena (localisation, keypoint evaluation).


H, W = 240, 320
SEMI_MAJOR, SEMI_MINOR = 16.0, 7.0  # the synthetic subject's half axes, pixels


def arena_background(rng: np.random.Generator) -> np.ndarray:
    texture = gaussian_filter(rng.normal(0, 1, (H, W)), 3)
    grey = 175 + 25 * texture / np.abs(texture).max()
    return np.repeat(grey[:, :, None], 3, axis=2)


def _path(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (T, 2) on a Lissajous path over most of the frame, and heading angles (T,)."""
    cx = W / 2 + 0.36 * W * np.sin(2 * np.pi * t / 150.0)
    cy = H / 2 + 0.32 * H * np.sin(2 * np.pi * t / 90.0 + 0.5)
    return np.stack([cx, cy], axis=1), 2 * np.pi * t / 29.0


def synthetic_frames(num_frames: int = 40, missing: tuple[int, ...] = (), seed: int = 0):
    """A dark elongated subject with a bright head marker wandering over a 320×240 textured arena:
    uint8 frames (T, H, W, 3), true centres (T, 2), marker points (T, 2), angles (T,)."""
    rng = np.random.default_rng(seed)
    background = arena_background(rng)
    body_texture = rng.normal(0, 12, (H, W))
    centres, angles = _path(np.arange(num_frames, dtype=np.float64))
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    frames, markers = [], []
    for t in range(num_frames):
        frame = background.copy()
        c, a = centres[t], angles[t]
        u = (xs - c[0]) * np.cos(a) + (ys - c[1]) * np.sin(a)
        v = -(xs - c[0]) * np.sin(a) + (ys - c[1]) * np.cos(a)
        marker = c + 9.0 * np.array([np.cos(a), np.sin(a)])
        markers.append(marker)
        if t not in missing:
            inside = (u / SEMI_MAJOR) ** 2 + (v / SEMI_MINOR) ** 2 <= 1.0
            frame[inside] = (40 + body_texture[inside])[:, None]
            dot = (xs - marker[0]) ** 2 + (ys - marker[1]) ** 2 <= 2.0**2
            frame[dot] = 250.0
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(frames), centres, np.array(markers), angles


# --------------------------------------------------------------------------------------------
# Several subjects: shapes that move, cross and leave.


def crossing_frames(num_frames: int = 40, paths: str = "cross", seed: int = 0):
    """Dark textured ellipses on a 160×120 light textured arena, each moving in a straight line.

    ``paths``: ``cross`` (two, head-on along nearly the same line: they touch and overlap in the
    middle), ``three`` (those two plus a third crossing both from top to bottom) or ``leave`` (two;
    the second leaves the frame through the right edge halfway and does not come back). Returns
    uint8 frames ``(T, H, W, 3)`` and true centres ``(T, S, 2)`` (NaN where outside the frame)."""
    rng = np.random.default_rng(seed)
    height, width = 120, 160
    texture = gaussian_filter(rng.normal(0, 1, (height, width)), 2)
    background = np.repeat((185 + 20 * texture / np.abs(texture).max())[..., None], 3, axis=2)
    t = np.arange(num_frames, dtype=np.float64)
    starts = {"cross": [(20, 58), (140, 66)], "three": [(20, 58), (140, 66), (84, 10)], "leave": [(30, 40), (60, 85)]}[paths]
    speed = 120.0 / max(num_frames - 1, 1)
    velocities = {"cross": [(speed, 0), (-speed, 0)], "three": [(speed, 0), (-speed, 0), (0, 0.8 * speed)],
                  "leave": [(0.5 * speed, 0), (2.5 * speed, 0)]}[paths]
    sizes = [(11.0, 5.5), (9.0, 4.5), (10.0, 5.0)]
    centres = np.stack([np.asarray(s, float) + t[:, None] * np.asarray(v, float) for s, v in zip(starts, velocities)],
                       axis=1)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    shading = rng.normal(0, 8, (height, width))
    frames = []
    for i in range(num_frames):
        frame = background.copy()
        for s, (cx, cy) in enumerate(centres[i]):
            (a, b), (vx, vy) = sizes[s], velocities[s]
            angle = np.arctan2(vy, vx)
            u = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
            v = -(xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)
            frame[(u / a) ** 2 + (v / b) ** 2 <= 1.0] = (40 + 25 * s + shading[(u / a) ** 2 + (v / b) ** 2 <= 1.0])[:, None]
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    outside = (centres[..., 0] < 0) | (centres[..., 0] > width - 1) | (centres[..., 1] < 0) | (centres[..., 1] > height - 1)
    centres[outside] = np.nan
    return np.stack(frames), centres


# --------------------------------------------------------------------------------------------
# Keypoint evaluation: labels related to keypoints by known maps, labelled arena images.


def affine_labels(rng, keypoints: np.ndarray, sources: list[int], sigma: float) -> np.ndarray:
    """Part p = A_p · keypoint[sources[p]] + b_p + N(0, sigma²) per coordinate."""
    parts = []
    for j in sources:
        a = rng.normal(0, 1, (2, 2)) + np.eye(2)
        b = rng.uniform(-50, 50, 2)
        parts.append(keypoints[:, j] @ a.T + b + rng.normal(0, sigma, (len(keypoints), 2)))
    return np.stack(parts, axis=1)


def synthetic_labelled(num: int = 30):
    """Labelled images of the arena subject: frames (M, H, W, 3) and head/tail labels (M, 2, 2)."""
    frames, centres, markers, angles = synthetic_frames(num * 5)
    frames, centres, markers = frames[::5], centres[::5], markers[::5]
    tail = centres - 12.0 * np.stack([np.cos(angles[::5]), np.sin(angles[::5])], axis=1)
    labels = np.stack([markers, tail], axis=1)  # (M, 2 parts, 2)
    return frames, labels


def labelled_frames(labels: np.ndarray):
    """:class:`fomm_kp.evaluation.labels.LabelledFrames` of head and tail labels ``(M, 2, 2)``."""
    from fomm_kp.evaluation.labels import LabelledFrames

    m = len(labels)
    return LabelledFrames(labels, ("head", "tail"), ("",) * m, np.arange(m), "", "synthetic")


# --------------------------------------------------------------------------------------------
# Behaviour: a body circling or oscillating, as tracks.


BEHAVIOUR_FPS = 30.0


def behaviour_keypoints(kind: str, frames: int, rng: np.random.Generator) -> np.ndarray:
    """Three keypoints (head, middle, tail) of a body ``(T, 3, 2)``.

    ``circling``: walks a circle of random radius at ~0.5 Hz, facing along it. ``oscillating``:
    stays in place, facing a random way, shaking sideways at ~4 Hz.
    """
    t = np.arange(frames) / BEHAVIOUR_FPS
    phase = rng.uniform(0, 2 * np.pi)
    centre0 = rng.uniform(150, 250, 2)
    if kind == "circling":
        radius, freq = rng.uniform(40, 80), rng.uniform(0.4, 0.6)
        angle = 2 * np.pi * freq * t + phase
        centre = centre0 + radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
        heading = angle + np.pi / 2
    else:
        heading = np.full(frames, phase)
        side = np.stack([-np.sin(heading), np.cos(heading)], axis=1)
        centre = centre0 + 6 * np.sin(2 * np.pi * rng.uniform(3.5, 4.5) * t)[:, None] * side
    axis = np.stack([np.cos(heading), np.sin(heading)], axis=1)
    kp = np.stack([centre + 15 * axis, centre, centre - 20 * axis], axis=1)
    return kp + rng.normal(0, 0.5, kp.shape)


def behaviour_tracks(kinds: list[str], seed: int, segment: int = 90, name: str = "video.mp4") -> Tracks:
    """Tracks of one body doing each of ``kinds`` for ``segment`` frames in turn (30 fps)."""
    rng = np.random.default_rng(seed)
    kp = np.concatenate([behaviour_keypoints(k, segment, rng) for k in kinds])
    t = len(kp)
    return Tracks(kp[:, None].astype(np.float32), np.ones((t, 1, 3)), np.arange(t), BEHAVIOUR_FPS, video=name,
                  keypoint_names=("head", "middle", "tail"))


# --------------------------------------------------------------------------------------------
# A tiny untrained FOMM (rendering, reconstruction: shapes and plumbing, not quality).


def untrained_model(meta: dict, seed: int = 1):
    """An untrained :class:`fomm_kp.runtime.Model` of the ``tiny`` config with checkpoint metadata ``meta``."""
    from fomm_kp.config import builtin_config
    from fomm_kp.models import FOMM
    from fomm_kp.runtime import Model

    torch.manual_seed(seed)
    config = builtin_config("tiny")
    return Model(FOMM(config.model), config, meta, 0)


@pytest.fixture
def tiny_model():
    """An untrained FOMM of the ``tiny`` config on whole frames."""
    return untrained_model({"localized": False}, seed=0)


def save_model(model, path: Path) -> Path:
    """Write ``model`` (a :class:`fomm_kp.runtime.Model`) as a teacher checkpoint."""
    from fomm_kp.checkpoint import save_checkpoint

    state = {name: part.state_dict() for name, part in model.network.parts().items() if part is not None}
    return save_checkpoint(path, model.config, state, 0, dict(model.meta))


def randomise_batch_norm(module) -> None:
    """Non-trivial running statistics in every BatchNorm2d, so that eval and train mode differ."""
    g = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))


def random_teacher_checkpoint(path: Path, meta: dict) -> Path:
    """A random ``tiny`` teacher checkpoint (detector batch norm randomised) at ``path``."""
    from fomm_kp.checkpoint import save_checkpoint
    from fomm_kp.config import builtin_config
    from fomm_kp.models import FOMM

    torch.manual_seed(0)
    config = builtin_config("tiny")
    network = FOMM(config.model)
    randomise_batch_norm(network.detector)
    state = {name: part.state_dict() for name, part in network.parts().items() if part is not None}
    return Path(save_checkpoint(path, config, state, 0, meta))


def moving_square_video(path: Path, width: int, height: int, count: int, fps: float = 10.0) -> None:
    """A bright square moving right on a dark background, ``count`` frames."""
    with VideoWriter(path, fps) as writer:
        for t in range(count):
            frame = np.full((height, width, 3), 40, dtype=np.uint8)
            x = 4 + 2 * t
            frame[10:22, x : x + 12] = (220, 180, 60)
            writer.write(frame)


# --------------------------------------------------------------------------------------------
# A tiny model trained for one step on the disc clip (commands that need a checkpoint).


def tiny_whole_frame():
    """The ``tiny`` built-in config on whole frames (no localisation)."""
    import dataclasses

    from fomm_kp.config import builtin_config

    config = builtin_config("tiny")
    return dataclasses.replace(config, data=dataclasses.replace(config.data, localize="off"))


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory, disc_clip: SyntheticClip) -> Path:
    """``checkpoint.pt`` of the tiny whole-frame config trained one step on the disc clip."""
    from fomm_kp import api

    folder = tmp_path_factory.mktemp("trained")
    api.train(disc_clip.path, folder, config=tiny_whole_frame(), steps=1, device="cpu")
    return folder / "checkpoint.pt"


# --------------------------------------------------------------------------------------------
# The command line, run in this process as the console script would.


def run_cli(args: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """Run ``fomm-kp ARGS`` in this process as the console script would; ``(exit code, stdout, stderr)``.

    ``main`` sets up its own logging to stderr (INFO, held back until the work begins), so any log
    line the library emits shows up in stderr as it would for a user.
    """
    from fomm_kp.cli import main

    monkeypatch.setattr(sys, "argv", ["fomm-kp", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --------------------------------------------------------------------------------------------
# Hostile input: a folder of ordinary inputs that every refused command must leave as it was.


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path (links are read through)."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass(frozen=True)
class HostileWorld:
    """Ordinary inputs in ``folder``: a video, a trained checkpoint, tracks, a classifier, labels, a config."""

    folder: Path

    def paths(self, out: Path) -> dict[str, str]:
        names = {"video": "video.mp4", "ckpt": "checkpoint.pt", "npz": "tracks.npz", "csv": "tracks.csv",
                 "clf": "classifier.npz", "labels": "labels.csv", "config": "config.yaml",
                 "clips": "clips.csv", "dlc": "labels_dlc.csv"}
        return {"out": str(out), "dir": str(self.folder), **{k: str(self.folder / v) for k, v in names.items()}}


@pytest.fixture(scope="session")
def hostile_world(tmp_path_factory: pytest.TempPathFactory, disc_clip: SyntheticClip,
                  trained_checkpoint: Path) -> HostileWorld:
    import shutil

    import yaml

    from fomm_kp.behaviour.classifiers import save_classifier
    from fomm_kp.behaviour.fitting import fit_from_clips
    from fomm_kp.config import builtin_config, to_dict
    from fomm_kp.tracks import save_tracks

    folder = tmp_path_factory.mktemp("hostile_world")
    shutil.copy(disc_clip.path, folder / "video.mp4")
    shutil.copy(trained_checkpoint, folder / "checkpoint.pt")
    tracks = behaviour_tracks(["circling", "oscillating"], seed=0, name="video.mp4")
    save_tracks(tracks, folder / "tracks.npz")
    save_tracks(tracks, folder / "tracks.csv")
    save_tracks(tracks.select_frames(slice(0, 20)), folder / "labels_dlc.csv")  # "labelled" frames 0-19 of the video
    clips = [("circling", behaviour_tracks(["circling"], seed=1)), ("oscillating", behaviour_tracks(["oscillating"], seed=2))]
    save_classifier(fit_from_clips(clips), folder / "classifier.npz")
    (folder / "labels.csv").write_text("video,start_frame,end_frame,label\nvideo,0,89,circling\nvideo,90,179,oscillating\n")
    (folder / "clips.csv").write_text("video,start_frame,end_frame,label,tracks\n" + "".join(
        f"video.mp4,{s},{s + 29},{'circling' if s < 90 else 'oscillating'},tracks.npz\n" for s in range(0, 180, 30)))
    (folder / "config.yaml").write_text(yaml.safe_dump(to_dict(builtin_config("tiny"))))
    return HostileWorld(folder)


def assert_refused(world: HostileWorld, args: list[str], out: Path, capsys: pytest.CaptureFixture,
                   monkeypatch: pytest.MonkeyPatch, *fragments: str) -> str:
    """Run ``fomm-kp ARGS`` (``{video}``, ``{out}``, ... filled from ``world`` and ``out``): exit 2, one
    ``error:`` line holding ``fragments``, every input unchanged and nothing left in ``out``.
    Returns the error line."""
    before = digests(world.folder)
    out.mkdir(parents=True, exist_ok=True)
    code, _, err = run_cli([arg.format(**world.paths(out)) for arg in args], capsys, monkeypatch)
    assert_one_error_line(code, err, *fragments)
    assert digests(world.folder) == before
    assert files_under(out) == [] and not [p for p in out.iterdir()], list(out.iterdir())
    return err.strip()
