"""Where keypoints sit: the share on the subject, judged from the frames a tracker decodes."""

from __future__ import annotations

import numpy as np

from fomm_kp.localize.foreground import OnSubject, OnSubjectSampler

from conftest import disc_frames


def _judge(points_of) -> OnSubject:
    frames, centres = disc_frames(num_frames=40, width=96, height=72, radius=9.0)
    sampler = OnSubjectSampler(len(frames), 96, 72, samples=20)
    for frame, centre in zip(frames, centres):
        sampler.add(frame, points_of(centre))
    return sampler.result()


def test_keypoints_on_the_moving_disc_are_on_the_subject() -> None:
    result = _judge(lambda c: np.stack([c, c + [3.0, 0.0], c - [0.0, 4.0]]))
    assert result.frames == 20 and result.share == 1.0 and result.median_count == 3


def test_keypoints_in_the_empty_scene_are_not() -> None:
    result = _judge(lambda c: np.array([[c[0], c[1]], [95.0 - c[0], 71.0 - c[1]], [np.nan, np.nan]]))
    assert result.num_keypoints == 3
    assert abs(result.share - 0.5) < 0.05  # one of the two found keypoints, the missing one not counted
    assert result.median_count == 1
    assert "50%" in result.describe()


def test_round_trip_through_plain_data() -> None:
    result = OnSubject(0.8, 8.0, 10, 100)
    assert OnSubject.from_data(result.to_data()) == result
    assert "not judged" in OnSubject.from_data({}).describe()
