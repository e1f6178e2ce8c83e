"""``live``: keypoints and behaviour labels from a camera, a file or a network stream, as they happen.

    summary = fomm_kp.live("udp://127.0.0.1:5000", "student.onnx", classifier="clf.npz", out="events.jsonl")

Everything that can be checked is checked before the first frame is processed (the model, the
classifier, the outputs, the source, the background): a bad input gives one error and writes
nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from fomm_kp.behaviour.classifiers import Classifier, load_classifier
from fomm_kp.errors import FommError
from fomm_kp.files import refuse_overwriting_inputs
from fomm_kp.live.display import Window, check_display
from fomm_kp.live.events import EventWriter
from fomm_kp.live.loop import LiveOptions, LiveOutputs, LiveSummary, Status, run_live
from fomm_kp.live.sources import FrameSource, SourceOptions, open_source, source_kind
from fomm_kp.localize.background import Background, background_from_frames, estimate_background
from fomm_kp.localize.crop_rule import online_boxes
from fomm_kp.runtime.detector import Detector
from fomm_kp.runtime.loading import load_model
from fomm_kp.video import IMAGE_SUFFIXES, WRITABLE_VIDEO_SUFFIXES, read_image
from fomm_kp.viz import TrailOverlay

__all__ = ["live", "check_outputs", "scene_background"]


def scene_background(path: str | os.PathLike, model: Detector) -> Background:
    """The background of the scene from an image of it, or from a video (median of sampled frames)."""
    path = Path(path)
    settings = model.config.data.localize_config()
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return background_from_frames([read_image(path)], settings)
    return estimate_background(path, settings)


def check_outputs(source: str | os.PathLike, model: object, classifier: object, out: object, record: object,
                  show: bool = False) -> None:
    """Refuse a missing source file, a recording that is not a video file, outputs that would
    replace an input, and ``show`` without a display: before anything is loaded, opened or written."""
    if source_kind(str(source)) == "file" and not Path(source).is_file():
        raise FommError(f"video not found: {source}")
    if record is not None and Path(record).suffix.lower() not in WRITABLE_VIDEO_SUFFIXES:
        raise FommError(f"--record {record}: use one of {', '.join(WRITABLE_VIDEO_SUFFIXES)}")
    inputs = [p for p in (model, classifier) if isinstance(p, (str, os.PathLike))]
    if Path(source).is_file():
        inputs.append(source)
    refuse_overwriting_inputs({"--out": out, "--record": record}, inputs)
    if show:
        check_display()


def live(
    source: str | os.PathLike,
    model: Detector | str | os.PathLike,
    classifier: Classifier | str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    record: str | os.PathLike | None = None,
    show: bool = False,
    options: LiveOptions = LiveOptions(),
    source_options: SourceOptions = SourceOptions(),
    background: str | os.PathLike | None = None,
    status: Callable[[Status], None] | None = None,
) -> LiveSummary:
    """Keypoints (and, with ``classifier``, ranked behaviour labels and bouts) of every frame of
    ``source`` as it arrives: a camera (``0``, ``/dev/video0``), a video file (paced at its own rate
    with ``source_options.realtime``) or a stream URL (``rtsp://``, ``udp://``, ``http://``, ...).

    ``model``: a detector or its file (student ``.onnx`` / checkpoint; see
    :func:`fomm_kp.runtime.load_model` for other backends). Events go to ``out`` as JSON lines (None:
    stdout; :mod:`fomm_kp.live.events`); ``record`` writes a video with the keypoints drawn;
    ``show`` opens a window. A localised model follows the subject frame by frame
    (:mod:`fomm_kp.localize.online`) against a running background, or against ``background`` (an
    image or a video of the scene) when given. Returns when the stream ends; Ctrl-C raises
    :class:`~fomm_kp.errors.Interrupted` after closing every output.
    """
    source = str(source)
    check_outputs(source, model, classifier, out, record, show)
    detector = load_model(model) if isinstance(model, (str, os.PathLike)) else model
    clf = load_classifier(classifier) if isinstance(classifier, (str, os.PathLike)) else classifier
    scene = None if background is None else scene_background(background, detector)
    stream: FrameSource = open_source(source, source_options)
    try:
        boxes = online_boxes(detector.crop, detector.config.data, stream.width, stream.height, stream.fps,
                             background=scene)
        window = Window(f"fomm-kp live: {source}", detector.num_keypoints) if show else None
        events = EventWriter(out)
    except BaseException:
        stream.close()
        raise
    recording = None
    try:
        recording = None if record is None else TrailOverlay(record, stream.fps, detector.num_keypoints)
    except BaseException:
        events.close()
        stream.close()
        raise
    outputs = LiveOutputs(events, recording, window)
    try:
        return run_live(stream, detector, boxes, outputs, options, clf, status)
    finally:
        if window is not None:
            window.close()
