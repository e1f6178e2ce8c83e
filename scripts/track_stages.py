"""Where offline tracking spends its time: CPU milliseconds per frame of each stage, one at a time.

    python scripts/track_stages.py --model student.onnx --frames 600

Each stage runs alone on the first ``--frames`` frames of the video (default: the open-field mouse,
640x480), in this process, and its process CPU time is divided by the frames:

- ``decode``: PyAV decoding (frame threads) without conversion; ``convert``: the conversion track
  makes (a grey video's frames to their grey plane, :mod:`fomm_kp.grey`; others to RGB);
- ``reduce``: the block-mean reduction localisation works on; ``find``: finding the subject in it
  (:func:`fomm_kp.localize.blobs.find_in_reduced`, following the previous detection), of which
  ``parts`` (the foreground and its parts, found on the decoding thread in ``track``) and
  ``choose`` (the subject among them, on the main thread) are shown apart;
- ``crop``: cutting each frame at a box of the model's side turned to the subject's heading and
  resizing it to the detector's input (:func:`fomm_kp.video.crop_resized`);
- ``detect``: the detector on batches of 64 crops (ONNX Runtime, ``--threads``).

- ``background``: the background's pass over the whole video (:func:`fomm_kp.localize.background.estimate_background`:
  decoding, skipping the frames nothing refers to unless sampled), per frame of the video.

``track`` makes the background's pass, then does every other stage once per frame, spread over a
decoding thread (decode, convert, reduce, parts) and the main thread (choose, crop, detect); the
total is the sum of ``background``, ``decode``, ``convert``, ``reduce``, ``find``, ``crop`` and ``detect``. CPU time counts
all threads of the process; other processes on a shared machine inflate it less than wall time,
but they do (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import av
import numpy as np

from fomm_kp.localize.background import estimate_background, reduce_frame
from fomm_kp.decoding import rgb_pixels
from fomm_kp.grey import GreyConverter
from fomm_kp.localize.blobs import choose_subject, find_in_reduced, foreground_parts
from fomm_kp.runtime import load_model
from fomm_kp.video import crop_resized, probe


def cpu_ms(run, count: int) -> float:
    started = time.process_time()
    run()
    return 1e3 * (time.process_time() - started) / count


def decoded(video: str, count: int, convert: bool) -> list:
    frames = []
    converter = GreyConverter(rgb_pixels)
    with av.open(video) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            frames.append(converter(frame) if convert else None)
            if len(frames) == count:
                break
    return frames


def follow(find, items: list, blobs: list) -> None:
    """The subject in each item, following the previous detection, appended to ``blobs``."""
    previous = None
    for item in items:
        blob = find(item, previous)
        previous = previous if blob is None else blob.centre
        blobs.append(blob)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--video", default="../shared/data/dlc-openfield/videos/m3v1mp4.mp4")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    model = load_model(args.model, threads=args.threads)
    config = model.config.data.localize_config()
    backgrounds: list = []
    background_ms = cpu_ms(lambda: backgrounds.append(estimate_background(args.video, config)), probe(args.video).num_frames)
    background = backgrounds[0]
    side = int(round(model.crop.box_side)) or 128
    n = args.frames
    stages = {"background": background_ms, "decode": cpu_ms(lambda: decoded(args.video, n, False), n)}
    frames: list = []
    stages["convert"] = cpu_ms(lambda: frames.extend(decoded(args.video, n, True)), n) - stages["decode"]
    reduced: list = []
    stages["reduce"] = cpu_ms(lambda: reduced.extend(reduce_frame(f, background.factor) for f in frames), n)
    parts: list = []
    stages["parts"] = cpu_ms(lambda: parts.extend(foreground_parts(r, background, config) for r in reduced), n)
    blobs: list = []
    choose = lambda item, previous: choose_subject(item, background, config, previous, float(side))  # noqa: E731
    find = lambda item, previous: find_in_reduced(item, background, config, previous, float(side))  # noqa: E731
    stages["choose"] = cpu_ms(lambda: follow(choose, parts, []), n)
    stages["find"] = cpu_ms(lambda: follow(find, reduced, blobs), n)
    boxes = [np.array([b.centre[0] - side / 2, b.centre[1] - side / 2, b.centre[0] + side / 2, b.centre[1] + side / 2,
                       b.heading]) if b is not None else np.array([0, 0, side, side, 0.0]) for b in blobs]
    crops: list = []
    stages["crop"] = cpu_ms(lambda: crops.extend(crop_resized(f, b, model.detector_size) for f, b in zip(frames, boxes)), n)
    stacked, box_array = np.stack(crops), np.stack(boxes)
    stages["detect"] = cpu_ms(lambda: [model.detect_resized(stacked[i:i + 64], box_array[i:i + 64])
                                       for i in range(0, n, 64)], n)
    result = {"video": args.video, "frames": n, "box_side": side, "threads": args.threads,
              "cpu_ms_per_frame": {k: round(v, 3) for k, v in stages.items()},
              "track_cpu_ms_per_frame": round(sum(v for k, v in stages.items() if k not in ("parts", "choose")), 3),
              "load_average": os.getloadavg()}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
