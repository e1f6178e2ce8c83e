"""Hostile options and settings: every value out of range is one ``error:`` line naming the option or
key, before anything is written or logged; no input changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import assert_refused

T = ["train", "{video}", "-o", "{out}/run", "--config", "{config}", "--steps", "1"]
RESUME = ["train", "{video}", "-o", "{out}/run"]
TRACK = ["track", "{video}", "-m", "{ckpt}", "-o", "{out}/t.npz"]
DISTILL = ["distill", "{video}", "-t", "{ckpt}", "-o", "{out}/s.pt"]
ANIMATE = ["animate", "{video}", "{video}", "-m", "{ckpt}", "-o", "{out}/a.mp4"]
FEATURES = ["features", "{npz}", "-o", "{out}/f.npz"]
FIT = ["fit", "{npz}", "--labels", "{labels}", "-o", "{out}/c.npz"]
CLASSIFY = ["classify", "{npz}", "--classifier", "{clf}", "--per-frame", "{out}/p.csv"]
SCORE = ["score", "{npz}", "--classifier", "{clf}", "-o", "{out}/report"]
MOTIFS = ["motifs", "{npz}", "-o", "{out}/motifs", "--no-clips"]
RECON = ["evaluate", "reconstruction", "{video}", "-m", "{ckpt}", "-o", "{out}/r.json"]
BEHAVIOUR = ["evaluate", "behaviour", "{labels}", "-o", "{out}/eval"]

CASES = {
    # train
    "train-steps-negative": (T + ["--steps", "-1"], "--steps"),
    "train-minutes-negative": (T + ["--minutes", "-1"], "--minutes"),
    "train-minutes-nan": (T + ["--minutes", "nan"], "--minutes"),
    "train-minutes-inf": (T + ["--minutes", "inf"], "--minutes"),
    "train-seed-negative": (T + ["--seed", "-1"], "--seed"),
    "train-seed-too-large": (T + ["--seed", str(2**32)], "--seed"),
    "train-seed-huge": (T + ["--seed", "9" * 40], "--seed"),
    "train-device-potato": (T + ["--device", "potato"], "potato"),
    "train-device-bad-index": (T + ["--device", "cuda:x"], "cuda:x"),
    "train-crop-nan": (T + ["--crop", "nan,0,10,10"], "--crop"),
    "train-crop-inf": (T + ["--crop", "0,0,inf,10"], "--crop"),
    "train-crop-three": (T + ["--crop", "1,2,3"], "--crop"),
    "train-crop-words": (T + ["--crop", "a,b,c,d"], "--crop"),
    "train-crop-empty": (T + ["--crop", "10,10,5,5"], "--crop"),
    "train-crop-outside": (T + ["--crop", "1000,1000,1100,1100"], "outside"),
    "train-crop-outside-negative": (T + ["--crop", "-300,-300,-200,-200"], "outside"),
    "train-config-missing": (T + ["--config", "{out}/missing.yaml"], "not found"),
    "train-config-unknown-name": (T + ["--config", "potato"], "potato"),
    "train-resume-nothing": (RESUME + ["--resume"], "not found"),
    "train-resume-and-overwrite": (RESUME + ["--resume", "--overwrite"], "--overwrite"),
    "train-video-missing": (["train", "{out}/none.mp4", "-o", "{out}/run"], "not found"),
    # track
    "track-batch-zero": (TRACK + ["--batch-size", "0"], "--batch-size"),
    "track-stride-zero": (TRACK + ["--stride", "0"], "--stride"),
    "track-start-negative": (TRACK + ["--start", "-1"], "--start"),
    "track-stop-before-start": (TRACK + ["--start", "5", "--stop", "3"], "no frames"),
    "track-start-past-end": (TRACK + ["--start", "1000"], "no frames"),
    "track-device-potato": (TRACK + ["--device", "potato"], "potato"),
    "track-backend-potato": (TRACK + ["--backend", "potato"], "potato"),
    "track-localize-potato": (TRACK + ["--localize", "potato"], "--localize"),
    "track-crop-nan": (TRACK + ["--crop", "0,0,nan,10"], "--crop"),
    "track-crop-outside": (TRACK + ["--crop", "500,500,600,600"], "outside"),
    "track-out-suffix": (["track", "{video}", "-m", "{ckpt}", "-o", "{out}/t.txt"], "--out"),
    "track-overlay-suffix": (TRACK + ["--overlay", "{out}/o.txt"], "--overlay"),
    "track-csv-suffix": (TRACK + ["--csv", "{out}/o.npz"], "--csv"),
    "track-engine-on-torch": (TRACK + ["--backend", "torch", "--engine", "{out}/e.onnx"], "--engine"),
    "track-checkpoint-missing": (["track", "{video}", "-m", "{out}/none.pt", "-o", "{out}/t.npz"], "not found"),
    # distill
    "distill-steps-zero": (DISTILL + ["--steps", "0"], "--steps"),
    "distill-minutes-negative": (DISTILL + ["--minutes", "-1"], "--minutes"),
    "distill-minutes-nan": (DISTILL + ["--minutes", "nan"], "--minutes"),
    "distill-batch-zero": (DISTILL + ["--batch-size", "0"], "--batch-size"),
    "distill-width-nan": (DISTILL + ["--width", "nan"], "--width"),
    "distill-width-small": (DISTILL + ["--width", "0.1"], "--width"),
    "distill-seed-negative": (DISTILL + ["--seed", "-1"], "--seed"),
    "distill-device-potato": (DISTILL + ["--device", "potato"], "potato"),
    "distill-refresh-negative": (DISTILL + ["--refresh-every", "-1"], "--refresh-every"),
    # export
    "export-suffix": (["export", "{ckpt}", "--onnx", "{out}/m.txt"], ".onnx"),
    "export-opset-low": (["export", "{ckpt}", "--onnx", "{out}/m.onnx", "--opset", "5"], "--opset"),
    "export-opset-high": (["export", "{ckpt}", "--onnx", "{out}/m.onnx", "--opset", "99"], "--opset"),
    "export-batch-zero": (["export", "{ckpt}", "--onnx", "{out}/m.onnx", "--batch", "0"], "--batch"),
    "export-fp16-int8": (["export", "{ckpt}", "--onnx", "{out}/m.onnx", "--tensorrt", "{out}/m.engine", "--fp16",
                          "--int8"], "--int8"),
    "export-fp16-alone": (["export", "{ckpt}", "--onnx", "{out}/m.onnx", "--fp16"], "--tensorrt"),
    "export-engine-suffix": (["export", "{ckpt}", "--onnx", "{out}/m.onnx", "--tensorrt", "{out}/m.txt"], "--tensorrt"),
    # animate
    "animate-size-zero": (ANIMATE + ["--size", "0"], "--size"),
    "animate-stride-zero": (ANIMATE + ["--stride", "0"], "--stride"),
    "animate-batch-zero": (ANIMATE + ["--batch-size", "0"], "--batch-size"),
    "animate-device-potato": (ANIMATE + ["--device", "potato"], "potato"),
    "animate-source-frame-past-end": (ANIMATE + ["--source-frame", "9999"], "9999"),
    "animate-start-past-end": (ANIMATE + ["--start", "9999"], "no"),
    "animate-suffix": (["animate", "{video}", "{video}", "-m", "{ckpt}", "-o", "{out}/a.txt"], ".txt"),
    # behaviour
    "features-stride-zero": (FEATURES + ["--stride", "0"], "stride"),
    "features-stride-nan": (FEATURES + ["--stride", "nan"], "stride"),
    "features-window-zero": (FEATURES + ["--window", "0"], "window"),
    "features-window-negative": (FEATURES + ["--window", "-1"], "window"),
    "features-window-inf": (FEATURES + ["--window", "inf"], "window"),
    "features-wavelets-negative": (FEATURES + ["--wavelet-freqs", "-1"], "wavelet"),
    "features-out-suffix": (["features", "{npz}", "-o", "{out}/f.txt"], ".txt"),
    "fit-kind-potato": (FIT + ["--kind", "potato"], "potato"),
    "fit-stride-negative": (FIT + ["--stride", "-1"], "stride"),
    "fit-window-nan": (FIT + ["--window", "nan"], "window"),
    "fit-out-suffix": (["fit", "{npz}", "--labels", "{labels}", "-o", "{out}/c.pkl"], ".pkl"),
    "fit-clip-malformed": (["fit", "--clip", "nolabel", "-o", "{out}/c.npz"], "--clip"),
    "fit-labels-missing": (["fit", "{npz}", "--labels", "{out}/none.csv", "-o", "{out}/c.npz"], "not found"),
    "fit-nothing": (["fit", "-o", "{out}/c.npz"], "--labels"),
    "classify-min-bout-negative": (CLASSIFY + ["--min-bout", "-1"], "--min-bout"),
    "classify-min-bout-nan": (CLASSIFY + ["--min-bout", "nan"], "--min-bout"),
    "classify-classifier-missing": (["classify", "{npz}", "--classifier", "{out}/none.npz"], "not found"),
    "classify-video-without-checkpoint": (["classify", "{video}", "--classifier", "{clf}"], "--checkpoint"),
    "score-min-bout-nan": (SCORE + ["--min-bout", "nan"], "--min-bout"),
    "score-source-missing": (["score", "{out}/none.npz", "--classifier", "{clf}", "-o", "{out}/report"], "none.npz"),
    "motifs-k-min-zero": (MOTIFS + ["--k-min", "0"], "--k-min"),
    "motifs-k-max-below-min": (MOTIFS + ["--k-min", "5", "--k-max", "3"], "--k-max"),
    "motifs-method-potato": (MOTIFS + ["--method", "potato"], "potato"),
    "motifs-examples-negative": (MOTIFS + ["--examples", "-1"], "--examples"),
    # evaluate
    "keypoints-folds-zero": (["evaluate", "keypoints", "{csv}", "--tracks", "{npz}", "--folds", "0"], "--folds"),
    "keypoints-fold-mode": (["evaluate", "keypoints", "{csv}", "--tracks", "{npz}", "--fold-mode", "x"], "--fold-mode"),
    "keypoints-labels-missing": (["evaluate", "keypoints", "{out}/none.csv", "--tracks", "{npz}"], "not found"),
    "recon-landmarks-potato": (RECON + ["--landmarks", "potato"], "potato"),
    "recon-stride-zero": (RECON + ["--stride", "0"], "--stride"),
    "recon-batch-zero": (RECON + ["--batch-size", "0"], "--batch-size"),
    "recon-device-potato": (RECON + ["--device", "potato"], "potato"),
    "behaviour-episodes-zero": (BEHAVIOUR + ["--episodes", "0"], "--episodes"),
    "behaviour-shots-zero": (BEHAVIOUR + ["--shots", "0"], "--shots"),
    "behaviour-kind-potato": (BEHAVIOUR + ["--kind", "potato"], "potato"),
    "behaviour-stride-zero": (BEHAVIOUR + ["--stride", "0"], "stride"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_option_is_one_line(case: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    args, fragment = CASES[case]
    assert_refused(hostile_world, args, tmp_path / "out", capsys, monkeypatch, fragment)


YAML = {
    "num-keypoints-zero": ("model: {detector: {num_keypoints: 0}}", "num_keypoints"),
    "batch-size-zero": ("train: {batch_size: 0}", "batch_size"),
    "learning-rate-nan": ("train: {learning_rate: .nan}", "learning_rate"),
    "learning-rate-inf": ("train: {learning_rate: .inf}", "learning_rate"),
    "learning-rate-text": ("train: {learning_rate: fast}", "learning_rate"),
    "seed-negative": ("train: {seed: -1}", "seed"),
    "seed-too-large": ("train: {seed: 4294967296}", "seed"),
    "image-size-zero": ("model: {image_size: 0}", "image_size"),
    "image-size-odd": ("model: {image_size: 66}", "image_size"),
    "steps-negative": ("train: {steps: -1}", "steps"),
    "minutes-negative": ("train: {minutes: -1}", "minutes"),
    "gaps-crossed": ("train: {min_gap: 5, max_gap: 2}", "max_gap"),
    "localize-potato": ("data: {localize: potato}", "localize"),
    "scales-empty": ("loss: {scales: []}", "scales"),
    "unknown-key": ("train: {stepz: 3}", "stepz"),
    "top-level-list": ("- 1\n- 2", "mapping"),
    "top-level-text": ("hello", "mapping"),
    "section-text": ("train: fast", "train"),
    "bad-syntax": ("train: {steps: [1, 2", "YAML"),
    "python-tag": ("!!python/object/apply:os.system ['touch {marker}']", "YAML"),
    "python-name": ("train: !!python/name:os.system", "YAML"),
    "bool-as-int": ("train: {steps: true}", "steps"),
    "margin-in-localizer": ("data: {localizer: {margin: 2.0}}", "margin"),
    "huge-number": ("train: {steps: 1e400}", "steps"),
}


@pytest.mark.parametrize("case", sorted(YAML))
def test_bad_config_file_is_one_line(case: str, hostile_world, tmp_path: Path, capsys, monkeypatch) -> None:
    text, fragment = YAML[case]
    marker = tmp_path / "marker"
    config = tmp_path / "bad.yaml"
    config.write_text(text.replace("{marker}", str(marker)))
    assert_refused(hostile_world, RESUME + ["--config", str(config), "--steps", "1"], tmp_path / "out", capsys,
                   monkeypatch, fragment)
    assert not marker.exists()
