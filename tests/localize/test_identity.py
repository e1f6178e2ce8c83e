"""Identities over time: the frame-to-frame assignment, on hand-made detections."""

from __future__ import annotations

import numpy as np
import pytest

from fomm_kp.config import IdentityConfig
from fomm_kp.errors import FommError
from fomm_kp.localize.blobs import Blob
from fomm_kp.localize.identity import Candidate, IdentityTracker, appearance_distance

GREY = np.array([100.0, 100.0, 100.0, 0, 0, 0, 1.0, 0, 0, 0, 0])


def _candidate(x: float, y: float, area: float = 100.0, appearance: np.ndarray = GREY) -> Candidate:
    blob = Blob(np.array([x, y], np.float32), area, np.eye(2), np.zeros((2, 2)), 10.0, 50.0, 0.5)
    return Candidate(blob, appearance)


def _run(tracker: IdentityTracker, frames: list[list[Candidate]]) -> np.ndarray:
    return np.stack([tracker.update(row, candidates).detection for row, candidates in enumerate(frames)])


def test_constant_velocity_prediction_keeps_identities_through_a_crossing() -> None:
    # two subjects on one line, head-on; in the middle frames they pass within a few pixels
    frames = [[_candidate(10 + 4 * t, 50), _candidate(90 - 4 * t, 53)] for t in range(21)]
    frames = [f if t % 2 else f[::-1] for t, f in enumerate(frames)]  # detection order says nothing
    detection = _run(IdentityTracker(2, 10.0), frames)
    first = [frames[t][detection[t, 0]].blob.centre[0] for t in range(21)]
    assert np.allclose(np.diff(first), 4.0)  # subject 0 moved right the whole time


def test_confidence_is_low_when_an_exchange_is_nearly_as_cheap() -> None:
    tracker = IdentityTracker(2, 10.0)
    tracker.update(0, [_candidate(0, 0), _candidate(100, 0)])
    far = tracker.update(1, [_candidate(0, 0), _candidate(100, 0)]).confidence
    near = IdentityTracker(2, 10.0)
    near.update(0, [_candidate(0, 0), _candidate(6, 0)])
    close = near.update(1, [_candidate(2, 0), _candidate(4, 0)]).confidence
    assert far.min() > 0.99 and close.max() < 0.6


def test_size_and_appearance_take_up_a_lost_subject() -> None:
    brown = GREY.copy()
    brown[:3] = (150, 110, 60)
    tracker = IdentityTracker(2, 10.0, IdentityConfig(max_gap=2))
    tracker.update(0, [_candidate(10, 10, 100), _candidate(80, 80, 300, brown)])
    for row in range(1, 6):  # subject 1 gone for longer than max_gap
        assert tracker.update(row, [_candidate(10, 10, 100)]).detection.tolist() == [0, -1]
    back = tracker.update(6, [_candidate(10, 10, 100), _candidate(40, 60, 290, brown)])
    assert back.detection.tolist() == [0, 1] and 0 < back.confidence[1] < 1
    assert appearance_distance(GREY, brown) > 0.5 > appearance_distance(GREY, GREY)


def test_a_missed_subject_does_not_steal_a_detection() -> None:
    tracker = IdentityTracker(2, 10.0)
    tracker.update(0, [_candidate(10, 10), _candidate(60, 10)])
    for row in range(1, 10):  # subject 1 stops being seen; subject 0 walks towards where it was
        out = tracker.update(row, [_candidate(10 + 5 * row, 10)])
        assert out.detection.tolist() == [0, -1]


def test_more_subjects_than_detections_and_none_at_all() -> None:
    tracker = IdentityTracker(3, 10.0)
    assert tracker.update(0, []).detection.tolist() == [-1, -1, -1]
    out = tracker.update(1, [_candidate(5, 5)])
    assert out.detection.tolist() == [0, -1, -1] and out.confidence.tolist() == [1.0, 0.0, 0.0]
    assert np.isnan(tracker.predictions(2)[1:]).all()
    with pytest.raises(FommError):
        IdentityTracker(0, 10.0)
    with pytest.raises(FommError):
        IdentityTracker(2, float("nan"))
