"""Behaviour commands: ``features``, ``fit``, ``classify``, ``score``, ``motifs``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from fomm_kp.behaviour.classifiers import KINDS, load_classifier, save_classifier
from fomm_kp.behaviour.features import (
    Features,
    is_features_file,
    load_features,
    load_features_or_tracks,
    motion_features,
    save_features,
)
from fomm_kp.behaviour.fitting import fit_classifier, fit_from_clips
from fomm_kp.behaviour.frame_labels import classify as classify_source
from fomm_kp.behaviour.frame_labels import rank_labels
from fomm_kp.behaviour.motifs import METHODS, find_motifs, write_motif_examples
from fomm_kp.behaviour.plots import plot_keypoint_spectrogram
from fomm_kp.behaviour.report import score as score_study
from fomm_kp.behaviour.signals import resolve_config
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.cli.app import app, console, progress_bar, results, working
from fomm_kp.cli.options import check_choice, check_option, check_suffix
from fomm_kp.errors import FommError
from fomm_kp.files import all_or_nothing, check_output_folder, check_outputs, refuse_folder_holding_inputs
from fomm_kp.runtime import load_model, track
from fomm_kp.tracks import Tracks, load_tracks
from fomm_kp.settings import integer, number
from fomm_kp.video import VIDEO_SUFFIXES, probe

FEATURE_SUFFIXES = (".npz", ".csv")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def feature_config(window: Optional[List[float]], stride: float, egocentric: bool = True,
                   wavelet_freqs: int = 0) -> FeatureConfig:
    """The feature settings the ``--window``/``--stride``/... options give."""
    return FeatureConfig(window_seconds=tuple(window) if window else FeatureConfig().window_seconds,
                         stride_seconds=stride, egocentric=egocentric, wavelet_num_freqs=wavelet_freqs)


def _load_tracks_or_video(path: Path, checkpoint: Optional[Path]) -> Tracks:
    """Tracks from a tracks file, or from a video tracked with the detector checkpoint."""
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        return load_tracks(path)
    if checkpoint is None:
        raise FommError(f"{path} is a video: pass --checkpoint to track it, or give its tracks file")
    probe(path)
    with working(f"tracking {path.name}"):
        return track(path, load_model(checkpoint))


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
    check_suffix("--out", out, FEATURE_SUFFIXES)
    check_suffix("--spectrogram", spectrogram, PLOT_SUFFIXES)
    check_outputs({"--out": out, "--spectrogram": spectrogram}, [tracks])
    data = load_tracks(tracks)
    config = feature_config(window, stride, egocentric, wavelet_freqs)
    feats = motion_features(data, config)
    with all_or_nothing(out, spectrogram):
        save_features(feats, out)
        if spectrogram is not None:
            plot_keypoint_spectrogram(data, spectrogram, config)
    console.print(f"{feats.num_windows} windows x {feats.num_features} features -> {out}")
    if spectrogram is not None:
        console.print(f"spectrogram -> {spectrogram}")


def _clip_pairs(clip: List[str]) -> list[tuple[str, Features | Tracks]]:
    pairs = []
    for item in clip:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise FommError(f"--clip takes LABEL=FILE, got '{item}'")
        pairs.append((label, load_features_or_tracks(path)))
    return pairs


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
    check_suffix("--out", out, (".npz",))
    check_choice("--kind", kind, KINDS)
    clip_files = [item.partition("=")[2] or None for item in clip or []]
    check_outputs({"--out": out}, [*(data or []), labels, *clip_files])
    config = feature_config(window, stride)
    if clip:
        if labels is not None or data:
            raise FommError("give either --clip LABEL=FILE examples or data files with --labels, not both")
        clf = fit_from_clips(_clip_pairs(clip), kind=kind, config=config)
    else:
        if labels is None or not data:
            raise FommError("give data files and --labels CSV, or --clip LABEL=FILE examples")
        clf = fit_classifier([load_features_or_tracks(p) for p in data], labels, kind=kind, config=config)
    save_classifier(clf, out)
    console.print(f"{clf.kind} classifier for {', '.join(clf.classes)} -> {out}")


@app.command()
def classify(
    source: Path = typer.Argument(..., help="video or tracks file"),
    classifier: Path = typer.Option(..., help="classifier .npz from `fomm-kp fit`"),
    checkpoint: Optional[Path] = typer.Option(None, help="detector checkpoint (needed when SOURCE is a video)"),
    per_frame: Optional[Path] = typer.Option(None, "--per-frame", help="write frame,label,probabilities CSV here"),
    min_bout: float = typer.Option(0.0, help="merge bouts shorter than this many seconds"),
) -> None:
    """Label a video: behaviours ranked by probability, optionally every frame to a CSV."""
    check_option("--min-bout", min_bout, number(0.0))
    check_suffix("--per-frame", per_frame, (".csv",))
    check_outputs({"--per-frame": per_frame}, [source, classifier, checkpoint])
    clf = load_classifier(classifier)
    result = classify_source(_load_tracks_or_video(source, checkpoint), clf, min_bout_seconds=min_bout)
    table = Table(title=f"{source.name}: {len(result.frame_indices)} frames")
    table.add_column("behaviour")
    table.add_column("mean probability", justify="right")
    table.add_column("time", justify="right")
    for name, prob, frac in rank_labels(result):
        table.add_row(name, f"{prob:.3f}", f"{100 * frac:.1f}%")
    results.print(table)
    if per_frame is not None:
        result.to_csv(per_frame)
        console.print(f"per-frame labels -> {per_frame}")


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
    check_option("--min-bout", min_bout, number(0.0))
    refuse_folder_holding_inputs("--out", out, [*sources, classifier, groups, checkpoint])
    check_output_folder(out, "report.json")
    with progress_bar("labelling", transient=True) as update:
        written = score_study([str(s) for s in sources], out, classifier=classifier, groups=groups,
                              checkpoint=checkpoint, min_bout_seconds=min_bout, progress=update)
    console.print(f"scored {len(written.videos)} video(s) -> {written.report_csv}, {written.report_json}")
    if written.groups_csv is not None:
        console.print(f"group comparison -> {written.groups_csv}, {written.groups_boxplot}")


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
    check_option("--k-min", k_min, integer(2))
    check_option("--k-max", k_max, integer(k_min))
    check_choice("--method", method, METHODS)
    check_option("--examples", examples, integer(0))
    refuse_folder_holding_inputs("--out", out, sources)
    check_output_folder(out, "motifs.csv")
    feats = [load_features(path) for path in sources if is_features_file(path)]
    tracks = [load_tracks(path) for path in sources if not is_features_file(path)]
    missing = [source.video for source in [*feats, *tracks] if not source.video or not Path(source.video).is_file()]
    if clips and missing:
        raise FommError(f"the example clips need the videos of the tracks: '{missing[0]}' not found "
                        "(run from the folder the tracks name them from, or pass --no-clips)")
    if tracks:
        config = resolve_config(tracks)
        feats += [motion_features(t, config) for t in tracks]
    with working("clustering"):
        found = find_motifs(feats, k_range=(k_min, k_max), method=method)
    written = write_motif_examples(found, feats, out, per_motif=examples, write_clips=clips)
    console.print(f"{found.k} motifs ({method}) -> {written['motifs_csv']}; classifier -> {written['classifier']}")
