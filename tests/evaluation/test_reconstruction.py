"""Reconstruction evaluation (L1, AKD, missing-keypoint rate) and the face-landmark backends."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fomm_kp.errors import FommError
from fomm_kp.evaluation import landmarks as landmarks_module
from fomm_kp.evaluation.reconstruction import (
    ReconstructionReport,
    VideoReconstruction,
    evaluate_reconstruction,
    keypoint_distance,
)
from fomm_kp.video import FrameRange, VideoWriter


def test_keypoint_distance_is_mean_euclidean_over_shared_points():
    reference = np.array([[0, 0], [10, 0], [0, 10], [5, 5]], dtype=float)
    candidate = reference + np.array([[3, 4], [0, 0], [0, 2], [np.nan, np.nan]])
    distance, present, missing = keypoint_distance(reference, candidate)
    assert distance == pytest.approx((5 + 0 + 2) / 3)
    assert (present, missing) == (4, 1)


def test_keypoint_distance_missing_face():
    reference = np.zeros((68, 2))
    distance, present, missing = keypoint_distance(reference, None)
    assert np.isnan(distance) and present == 68 and missing == 68
    distance, present, missing = keypoint_distance(None, reference)
    assert np.isnan(distance) and present == 0 and missing == 0
    with pytest.raises(FommError):
        keypoint_distance(reference, np.zeros((5, 2)))


def test_report_pools_frames_and_counts_missing_rate():
    first = VideoReconstruction(
        video="a.mp4", frame_indices=np.arange(2), l1_per_frame=np.array([0.1, 0.3]),
        baseline_l1_per_frame=np.array([0.0, 0.4]), akd_per_frame=np.array([1.0, np.nan]),
        baseline_akd_per_frame=np.array([0.0, 2.0]), landmarks_present=136, landmarks_missing=68,
        baseline_landmarks_missing=0,
    )
    second = VideoReconstruction(
        video="b.mp4", frame_indices=np.arange(1), l1_per_frame=np.array([0.2]),
        baseline_l1_per_frame=np.array([0.0]), akd_per_frame=np.array([3.0]),
        baseline_akd_per_frame=np.array([0.0]), landmarks_present=68, landmarks_missing=0,
        baseline_landmarks_missing=0,
    )
    report = ReconstructionReport((first, second), image_size=64, landmark_size=256, landmarks="fake")
    assert report.l1 == pytest.approx(0.2)  # frame-weighted: (0.1 + 0.3 + 0.2) / 3
    assert report.akd == pytest.approx(2.0)  # frames with a distance: (1 + 3) / 2
    assert report.mkr == pytest.approx(68 / 204)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["frames"] == 3 and data["videos"][0]["mkr"] == pytest.approx(0.5)


def grey_square_video(path: Path, count: int = 6, side: int = 48) -> Path:
    with VideoWriter(path, 10.0) as writer:
        for t in range(count):
            frame = np.full((side, side, 3), 30, dtype=np.uint8)
            x = 6 + 3 * t
            frame[16:28, x : x + 12] = 230
            writer.write(frame)
    return path


class BrightCentroid:
    """A stand-in landmark detector: 68 copies of the centroid of bright pixels (None if there are none)."""

    name = "bright centroid"

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        ys, xs = np.nonzero(image.mean(axis=2) > 128)
        if len(xs) == 0:
            return None
        return np.tile(np.array([[xs.mean(), ys.mean()]], dtype=np.float32), (68, 1))


def test_evaluate_reconstruction_follows_the_protocol(tiny_model, tmp_path):
    video = grey_square_video(tmp_path / "square.mp4")
    report = evaluate_reconstruction(tiny_model, [video], landmarks=BrightCentroid(), landmark_size=64, batch_size=4)
    (result,) = report.videos
    assert result.num_frames == 6
    assert np.all((result.l1_per_frame >= 0) & (result.l1_per_frame <= 1))
    # the source is the first frame: copying it reconstructs frame 0 exactly, later frames not
    assert result.baseline_l1_per_frame[0] == pytest.approx(0.0, abs=1e-7)
    assert np.all(result.baseline_l1_per_frame[1:] > 0.01)
    # the copied source's landmarks fall behind the moving square: 3 px per frame in 48 px → 4 px at 64
    np.testing.assert_allclose(result.baseline_akd_per_frame, 4.0 * np.arange(6), atol=1.0)
    assert result.landmarks_present == 6 * 68
    assert report.landmarks == "bright centroid"
    assert 0 <= report.mkr <= 1


def test_evaluate_reconstruction_l1_only_and_bad_inputs(tiny_model, tmp_path):
    video = grey_square_video(tmp_path / "square.mp4", count=4)
    report = evaluate_reconstruction(tiny_model, [video, video], frames=FrameRange(stride=2))
    assert [v.num_frames for v in report.videos] == [2, 2]
    assert report.akd is None and report.mkr is None and report.landmarks is None
    with pytest.raises(FommError):
        evaluate_reconstruction(tiny_model, [])
    with pytest.raises(FommError, match="not found"):
        evaluate_reconstruction(tiny_model, [tmp_path / "missing.mp4"])


class MeanColour:
    """A stand-in identity embedding: the image's mean colour (None for a black image)."""

    name = "mean colour"

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        return None if image.max() == 0 else image.reshape(-1, 3).mean(axis=0) / 255


def test_full_resolution_reconstruction_and_aed(tiny_model, tmp_path):
    video = grey_square_video(tmp_path / "square.mp4", count=5, side=48)
    report = evaluate_reconstruction(tiny_model, [video], landmarks=BrightCentroid(), identity=MeanColour(),
                                     landmark_size=64, resolution="full", batch_size=2)
    (result,) = report.videos
    assert report.resolution == "full" and report.identity == "mean colour"
    assert result.baseline_l1_per_frame[0] == pytest.approx(0.0, abs=1e-7)  # at 48 px, the video's own size
    assert result.baseline_aed_per_frame[0] == pytest.approx(0.0, abs=1e-12)
    assert result.aed_per_frame.shape == (5,) and np.isfinite(result.aed_per_frame).all()
    data = json.loads(json.dumps(report.to_dict()))
    assert data["aed"] == pytest.approx(float(result.aed_per_frame.mean()))
    assert data["baseline_aed"] == pytest.approx(float(result.baseline_aed_per_frame.mean()))
    with pytest.raises(FommError, match="resolution"):
        evaluate_reconstruction(tiny_model, [video], resolution="huge")
    with pytest.raises(FommError, match="identity"):
        evaluate_reconstruction(tiny_model, [video], identity="openface")


@pytest.mark.realdata
def test_aed_of_a_clip_against_itself_is_zero(shared_data):
    pytest.importorskip("dlib")
    from fomm_kp.evaluation.face_scores import FrameScores
    from fomm_kp.evaluation.identity import DlibFaceEmbedding, identity_distance
    from fomm_kp.evaluation.landmarks import face_model_file
    from fomm_kp.video import read_frames

    if face_model_file("dlib_face_recognition_resnet_model_v1.dat") is None:
        pytest.skip("face-recognition-models is not installed")
    embedding = DlibFaceEmbedding()
    _, frames = read_frames(shared_data / "faces-fomm" / "04.mp4", stride=50)
    scores = FrameScores(None, embedding, 256)
    scores.set_source(frames[0])
    for frame in frames:
        scores.add_faces(frame, frame)  # the clip as its own reconstruction
    assert len(scores.aed) == len(frames) >= 4
    assert scores.aed == [0.0] * len(frames)
    assert 0 < max(scores.baseline_aed) < 0.6  # the same speaker in other frames: dlib's "same person"
    other = read_frames(shared_data / "faces-fomm" / "00.mp4", stop=1)[1][0]
    assert identity_distance(embedding(frames[0]), embedding(other)) > 0.6  # another speaker
    assert embedding(np.full((128, 128, 3), 90, dtype=np.uint8)) is None


# --- landmark backends ----------------------------------------------------------------------


def test_landmark_backend_errors_name_what_to_install(monkeypatch):
    with pytest.raises(FommError, match="backend"):
        landmarks_module.landmark_detector("bogus")
    monkeypatch.setattr(landmarks_module, "available", lambda name: False)
    monkeypatch.setattr(landmarks_module, "dlib_predictor_path", lambda: None)
    with pytest.raises(FommError, match=r'pip install "fomm_kp\[faces\]"'):
        landmarks_module.landmark_detector("auto")
    monkeypatch.setitem(sys.modules, "face_alignment", None)
    with pytest.raises(FommError, match=r'pip install "fomm_kp\[faces-fan\]"'):
        landmarks_module.landmark_detector("face-alignment")


def test_face_alignment_without_weights_says_where_to_place_them(monkeypatch, tmp_path):
    monkeypatch.setattr(landmarks_module, "available", lambda name: True)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FommError) as info:
        landmarks_module.landmark_detector("face-alignment")
    message = str(info.value)
    assert landmarks_module.FAN_WEIGHTS in message and landmarks_module.S3FD_WEIGHTS in message
    assert str(tmp_path / "hub" / "checkpoints") in message


def test_dlib_predictor_env_must_point_to_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv(landmarks_module.DLIB_PREDICTOR_ENV, str(tmp_path / "nope.dat"))
    with pytest.raises(FommError, match="no such file"):
        landmarks_module.dlib_predictor_path()


@pytest.mark.realdata
def test_dlib_landmarks_on_a_real_face(shared_data):
    pytest.importorskip("dlib")
    if landmarks_module.dlib_predictor_path() is None:
        pytest.skip("face-recognition-models is not installed")
    from fomm_kp.video import read_frame_at

    detector = landmarks_module.landmark_detector("dlib")
    frame = read_frame_at(shared_data / "faces-fomm" / "00.mp4", 0)
    points = detector(frame)
    assert points is not None and points.shape == (68, 2)
    # the face fills the middle of the aligned 256 px frame
    assert np.all((points > 20) & (points < 250))
    assert detector(np.full((128, 128, 3), 90, dtype=np.uint8)) is None
