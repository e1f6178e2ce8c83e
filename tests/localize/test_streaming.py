"""Boxes handed out while frames stream in equal the boxes of the whole video, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from fomm_kp.config import LocalizeConfig
from fomm_kp.localize.blobs import Blob
from fomm_kp.localize.boxes import boxes_from_blobs
from fomm_kp.localize.streaming import StreamingBoxes


def _blob(x: float, y: float, heading: float) -> Blob:
    return Blob(np.array([x, y], np.float32), 100.0, np.eye(2, dtype=np.float32), np.zeros((2, 2), np.float32),
                20.0, 30.0, 1.0, heading, 2.0)


def _random_blobs(rng: np.random.Generator, count: int) -> list[Blob | None]:
    """A wandering subject with flipping heading cues, missing in runs of every length."""
    t = np.arange(count)
    x = 320 + 250 * np.sin(t / 40.0) + rng.normal(0, 3, count)
    y = 240 + 200 * np.cos(t / 55.0) + rng.normal(0, 3, count)
    heading = t / 20.0 + np.where(rng.random(count) < 0.2, np.pi, 0.0) + rng.normal(0, 0.2, count)
    present = np.ones(count, bool)
    for _ in range(rng.integers(0, 6)):
        start = rng.integers(0, count)
        present[start:start + rng.choice([1, 3, 20, 80, 400])] = False
    blobs = [_blob(x[i], y[i], heading[i]) if present[i] else None for i in range(count)]
    for i in np.nonzero(rng.random(count) < 0.03)[0]:  # found, heading unknown
        if blobs[i] is not None:
            blobs[i] = _blob(x[i], y[i], np.nan)
    return blobs


def _streamed(blobs: list[Blob | None], side: int, aligned: bool, config: LocalizeConfig,
              rng: np.random.Generator) -> list[np.ndarray | None]:
    stream = StreamingBoxes(640, 480, side, aligned, config)
    out: list[np.ndarray | None] = []
    for blob in blobs:
        stream.push(blob)
        if rng.random() < 0.3:
            out += stream.take()
    out += stream.take(end=True)
    return out


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("aligned", [False, True])
def test_streamed_boxes_equal_whole_video_boxes(seed: int, aligned: bool) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.choice([1, 2, 4, 7, 12, 26, 30, 60, 300, 900]))
    config = LocalizeConfig(smooth_sigma=float(rng.choice([0.0, 1.0, 2.0, 3.5])))
    blobs = _random_blobs(rng, count)
    expected = boxes_from_blobs(blobs, np.arange(count), 640, 480, config, side=96)
    boxes = expected.crop_boxes(aligned).astype(np.float64)
    streamed = _streamed(blobs, 96, aligned, config, rng)
    assert len(streamed) == count
    for i, (box, found) in enumerate(zip(streamed, expected.found)):
        if not found:
            assert box is None, i
        else:
            np.testing.assert_array_equal(box, boxes[i], err_msg=f"frame {i} of {count}")


def test_boxes_come_out_a_few_dozen_frames_behind() -> None:
    rng = np.random.default_rng(0)
    blobs = _random_blobs(rng, 500)
    blobs = [b if b is not None else _blob(300, 200, 0.5) for b in blobs]  # always found
    stream = StreamingBoxes(640, 480, 96, True, LocalizeConfig(smooth_sigma=2.0))
    behind = []
    for i, blob in enumerate(blobs):
        stream.push(blob)
        stream.take()
        behind.append(i + 1 - stream.done)
    assert max(behind) <= 2 + 8 + 25 + 1
    assert len(stream.take(end=True)) == max(0, behind[-1])


def test_nothing_found_gives_no_boxes() -> None:
    stream = StreamingBoxes(640, 480, 96, True)
    for _ in range(50):
        stream.push(None)
        assert stream.take() == []  # no subject yet: these rows wait for one
    assert stream.take(end=True) == [None] * 50
