"""Behaviour commands: ``features``, ``fit``, ``classify``, ``score``, ``motifs``, ``evaluate behaviour``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from fomm_kp.cli.app import app, evaluate_app
from fomm_kp.errors import FommError
from fomm_kp.files import refuse_folder_holding_inputs, refuse_overwriting_inputs

_console = Console()
_VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")


def _feature_config(window: Optional[List[float]], stride: float, egocentric: bool, wavelet_freqs: int):
    from fomm_kp.behaviour.features import FeatureConfig

    return FeatureConfig(
        window_seconds=tuple(window) if window else FeatureConfig().window_seconds,
        stride_seconds=stride,
        egocentric=egocentric,
        wavelet_num_freqs=wavelet_freqs,
    )


def _load_tracks_or_video(path: Path, checkpoint: Optional[Path]):
    """Tracks from a tracks file, or from a video tracked with the detector checkpoint."""
    from fomm_kp.tracks import load_tracks

    if path.suffix.lower() in _VIDEO_SUFFIXES:
        if checkpoint is None:
            raise FommError(f"{path} is a video: pass --checkpoint to track it, or give its tracks file")
        from fomm_kp import api

        with _console.status(f"tracking {path.name}"):
            return api.track(path, api.load_model(checkpoint))
    return load_tracks(path)


@app.command()
def features(
    tracks: Path = typer.Argument(..., help="tracks file (.npz, DeepLabCut .csv/.h5, SLEAP .slp, .nwb)"),
    out: Path = typer.Option(..., "--out", "-o", help="features file (.npz, or .csv for a table)"),
    window: Optional[List[float]] = typer.Option(None, "--window", help="window length in seconds (repeat for several; default 0.5 and 2)"),
    stride: float = typer.Option(0.25, help="seconds between window centres"),
    egocentric: bool = typer.Option(True, help="align poses to the body centre and heading"),
    wavelet_freqs: int = typer.Option(0, help="Morlet wavelet frequencies per keypoint as extra features (0 = off)"),
    spectrogram: Optional[Path] = typer.Option(None, help="also write a wavelet spectrogram PNG here"),
) -> None:
    """Motion and frequency features of keypoint tracks over sliding windows."""
    from fomm_kp.behaviour.features import motion_features, plot_keypoint_spectrogram, save_features
    from fomm_kp.tracks import load_tracks

    refuse_overwriting_inputs({"--out": out, "--spectrogram": spectrogram}, [tracks])
    data = load_tracks(tracks)
    config = _feature_config(window, stride, egocentric, wavelet_freqs)
    feats = motion_features(data, config)
    save_features(feats, out)
    _console.print(f"{feats.num_windows} windows x {feats.num_features} features -> {out}")
    if spectrogram is not None:
        plot_keypoint_spectrogram(data, spectrogram, config)
        _console.print(f"spectrogram -> {spectrogram}")


@app.command()
def fit(
    data: List[Path] = typer.Argument(None, help="tracks or features files of the labelled videos"),
    out: Path = typer.Option(..., "--out", "-o", help="classifier file (.npz)"),
    labels: Optional[Path] = typer.Option(None, help="CSV video,start_frame,end_frame,label (end inclusive)"),
    clip: Optional[List[str]] = typer.Option(None, "--clip", help="LABEL=TRACKS example clip (repeat; instead of --labels)"),
    kind: str = typer.Option("prototype", help="prototype, knn, logistic or temporal"),
    window: Optional[List[float]] = typer.Option(None, "--window", help="window length in seconds (repeatable)"),
    stride: float = typer.Option(0.25, help="seconds between window centres"),
) -> None:
    """Fit a few-shot behaviour classifier from labelled segments or example clips."""
    from fomm_kp.behaviour.classifiers import fit_classifier, fit_from_clips, save_classifier
    from fomm_kp.behaviour.features import load_features
    from fomm_kp.tracks import load_tracks

    def load(path: Path):
        if path.suffix.lower() == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as z:
                is_features = "kind" in z and str(z["kind"]) == "fomm_kp.features"
            return load_features(path) if is_features else load_tracks(path)
        return load_tracks(path)

    clip_files = [item.partition("=")[2] or None for item in clip or []]
    refuse_overwriting_inputs({"--out": out}, [*(data or []), labels, *clip_files])
    config = _feature_config(window, stride, True, 0)
    if clip:
        if labels is not None or data:
            raise FommError("give either --clip LABEL=FILE examples or data files with --labels, not both")
        pairs = []
        for item in clip:
            label, sep, path = item.partition("=")
            if not sep or not label or not path:
                raise FommError(f"--clip takes LABEL=FILE, got '{item}'")
            pairs.append((label, load(Path(path))))
        clf = fit_from_clips(pairs, kind=kind, config=config)
    else:
        if labels is None or not data:
            raise FommError("give data files and --labels CSV, or --clip LABEL=FILE examples")
        clf = fit_classifier([load(p) for p in data], labels, kind=kind, config=config)
    save_classifier(clf, out)
    _console.print(f"{clf.kind} classifier for {', '.join(clf.classes)} -> {out}")


@app.command()
def classify(
    source: Path = typer.Argument(..., help="video or tracks file"),
    classifier: Path = typer.Option(..., help="classifier .npz from `fomm-kp fit`"),
    checkpoint: Optional[Path] = typer.Option(None, help="detector checkpoint (needed when SOURCE is a video)"),
    per_frame: Optional[Path] = typer.Option(None, "--per-frame", help="write frame,label,probabilities CSV here"),
    min_bout: float = typer.Option(0.0, help="merge bouts shorter than this many seconds"),
) -> None:
    """Label a video: behaviours ranked by probability, optionally every frame to a CSV."""
    from fomm_kp.behaviour.classifiers import classify as classify_tracks
    from fomm_kp.behaviour.classifiers import load_classifier, rank_labels

    refuse_overwriting_inputs({"--per-frame": per_frame}, [source, classifier, checkpoint])
    clf = load_classifier(classifier)
    tracks = _load_tracks_or_video(source, checkpoint)
    result = classify_tracks(tracks, clf, min_bout_seconds=min_bout)
    table = Table(title=f"{source.name}: {len(result.frame_indices)} frames")
    table.add_column("behaviour")
    table.add_column("mean probability", justify="right")
    table.add_column("time", justify="right")
    for name, prob, frac in rank_labels(result):
        table.add_row(name, f"{prob:.3f}", f"{100 * frac:.1f}%")
    _console.print(table)
    if per_frame is not None:
        result.to_csv(per_frame)
        _console.print(f"per-frame labels -> {per_frame}")


@app.command()
def score(
    sources: List[Path] = typer.Argument(..., help="folder or files: tracks, per-frame label CSVs, or videos"),
    out: Path = typer.Option(..., "--out", "-o", help="report folder"),
    classifier: Optional[Path] = typer.Option(None, help="classifier .npz (not needed for per-frame CSVs)"),
    groups: Optional[Path] = typer.Option(None, help="CSV video,group for the group comparison"),
    checkpoint: Optional[Path] = typer.Option(None, help="detector checkpoint (needed for video sources)"),
    min_bout: float = typer.Option(0.0, help="merge bouts shorter than this many seconds"),
) -> None:
    """Score a study: ethograms, time budgets, bouts, latencies, transitions, group comparison."""
    from fomm_kp.behaviour.score import score as score_study

    refuse_folder_holding_inputs("--out", out, [*sources, classifier, groups, checkpoint])
    with Progress(console=_console, transient=True) as progress:
        task = progress.add_task("labelling", total=None)

        def report(done: int, total: int, name: str) -> None:
            progress.update(task, completed=done, total=total, description=f"labelled {name}")

        written = score_study([str(s) for s in sources], out, classifier=classifier, groups=groups,
                              checkpoint=checkpoint, min_bout_seconds=min_bout, progress=report)
    videos = sum(1 for k in written if k.startswith("ethogram:"))
    _console.print(f"scored {videos} video(s) -> {written['report_csv']}, {written['report_json']}")
    if "groups_csv" in written:
        _console.print(f"group comparison -> {written['groups_csv']}, {written['groups_boxplot']}")


@app.command()
def motifs(
    sources: List[Path] = typer.Argument(..., help="tracks files (or features .npz)"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder"),
    k_min: int = typer.Option(2, help="fewest motifs to try"),
    k_max: int = typer.Option(10, help="most motifs to try"),
    method: str = typer.Option("kmeans", help="kmeans (k by silhouette) or gmm (k by BIC)"),
    examples: int = typer.Option(3, help="example windows per motif in each clip"),
    clips: bool = typer.Option(True, help="write an example clip per motif (needs the videos)"),
) -> None:
    """Find unlabelled motifs: cluster feature windows and write example clips to name them."""
    from fomm_kp.behaviour.classifiers import save_classifier
    from fomm_kp.behaviour.features import load_features, motion_features, resolve_config
    from fomm_kp.behaviour.motifs import find_motifs, write_motif_examples
    from fomm_kp.tracks import load_tracks

    refuse_folder_holding_inputs("--out", out, sources)
    feats, tracks = [], []
    for path in sources:
        if path.suffix.lower() == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as z:
                is_features = "kind" in z and str(z["kind"]) == "fomm_kp.features"
            if is_features:
                feats.append(load_features(path))
                continue
        tracks.append(load_tracks(path))
    if tracks:
        config = resolve_config(tracks)
        feats += [motion_features(t, config) for t in tracks]
    with _console.status("clustering"):
        found = find_motifs(feats, k_range=(k_min, k_max), method=method)
    written = write_motif_examples(found, feats, out, per_motif=examples, write_clips=clips)
    save_classifier(found.to_classifier(), out / "motifs_classifier.npz")
    _console.print(f"{found.k} motifs ({method}) -> {written['motifs_csv']}; classifier -> {out / 'motifs_classifier.npz'}")


@evaluate_app.command("behaviour")
def evaluate_behaviour(
    table: Path = typer.Argument(..., help="CSV video,start_frame,end_frame,label[,tracks][,group][,x0,y0,x1,y1]: one clip per row"),
    out: Path = typer.Option(..., "--out", "-o", help="results folder"),
    tracks_dir: Optional[Path] = typer.Option(None, help="folder of tracks named after the videos"),
    shots: Optional[List[int]] = typer.Option(None, "--shots", help="K of K-shot (repeatable; default 1, 2, 4)"),
    episodes: int = typer.Option(200, help="random episodes per setting"),
    kind: Optional[List[str]] = typer.Option(None, "--kind", help="classifier kind (repeatable; default prototype)"),
    pixel: bool = typer.Option(True, help="also run the pixel motion-energy baseline"),
    keypoints: bool = typer.Option(True, help="run keypoint features (needs tracks)"),
    window: Optional[List[float]] = typer.Option(None, "--window", help="window length in seconds (repeatable)"),
    stride: float = typer.Option(0.25, help="seconds between window centres"),
) -> None:
    """N-way K-shot episodes and leave-one-group-out: keypoint features vs a pixel baseline."""
    from fomm_kp.evaluation.behaviour import evaluate_behaviour as run

    config = _feature_config(window, stride, True, 0)
    with _console.status("evaluating"):
        results = run(table, out, tracks_dir=tracks_dir, pixel=pixel, keypoints=keypoints, shots=shots or (1, 2, 4),
                      episodes=episodes, kinds=kind or ("prototype",), config=config)
    view = Table(title=f"{table.name}: {results['clips']} clips, clip-level, {episodes} episodes")
    for col in ("features", "setting", "accuracy", "macro-F1"):
        view.add_column(col)
    for name in ("keypoints", "pixel"):
        for key, r in results.get(name, {}).items():
            if "skipped" in r:
                view.add_row(name, key, "skipped", "")
            elif "accuracy_mean" in r:
                view.add_row(name, f"{r['n_way']}-way {key}", f"{r['accuracy_mean']:.3f} ± {r['accuracy_sd']:.3f}",
                             f"{r['macro_f1_mean']:.3f} ± {r['macro_f1_sd']:.3f}")
            else:
                view.add_row(name, key, f"{r['accuracy']:.3f}", f"{r['macro_f1']:.3f}")
    _console.print(view)
    _console.print(f"results -> {out / 'results.json'}")
