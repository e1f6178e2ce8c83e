"""Shared test set-up: one torch thread per test process (2-core machines), data paths, seeds."""

from __future__ import annotations

import gc
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

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
    from fomm_kp.video import VideoWriter

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
# The command line, run in this process as the console script would.


def run_cli(args: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """Run ``fomm-kp ARGS`` in this process as the console script would; ``(exit code, stdout, stderr)``.

    ``main`` configures logging to stderr at INFO level; under pytest the root logger already has
    handlers, so that is mimicked here: any log line the library emits shows up in stderr.
    """
    from fomm_kp.cli import main

    monkeypatch.setattr(sys, "argv", ["fomm-kp", *args])
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
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
