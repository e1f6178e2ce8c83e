"""``fomm-kp interactions``: what pairs of subjects do to each other, over windows; graphs per window."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fomm_kp.behaviour.features import save_features
from fomm_kp.behaviour.interactions import (
    InteractionConfig,
    interaction_features,
    interaction_graphs,
    save_interaction_graphs,
)
from fomm_kp.behaviour.signals import resolve_config
from fomm_kp.behaviour.windows import FeatureConfig
from fomm_kp.cli.app import app, console
from fomm_kp.cli.options import check_option, check_suffix
from fomm_kp.errors import FommError
from fomm_kp.files import all_or_nothing, check_outputs
from fomm_kp.settings import number
from fomm_kp.tracks import load_tracks


@app.command()
def interactions(
    tracks: Path = typer.Argument(..., help="tracks of two or more subjects (.npz, DeepLabCut .csv/.h5, SLEAP .slp)"),
    out: Path = typer.Option(..., "--out", "-o", help="features file (.npz, or .csv for a table)"),
    graphs: Optional[Path] = typer.Option(None, help="also write one graph per window (.json, networkx node-link layout)"),
    window: Optional[List[float]] = typer.Option(None, "--window", help="window length in seconds (repeat for several; default 0.5 and 2)"),
    stride: float = typer.Option(0.25, help="seconds between window centres"),
    contact_distance: float = typer.Option(0.0, help="bodies closer than this (px) are in contact (0: a quarter of the median body length)"),
    heading: Optional[str] = typer.Option(None, help="the body axis as two keypoint names tail,head (default: principal axis)"),
) -> None:
    """Per pair of subjects: distances (centroids, nearest keypoints), relative heading, approach speed,
    facing angles and contact time, over sliding windows."""
    check_suffix("--out", out, (".npz", ".csv"))
    check_suffix("--graphs", graphs, (".json",))
    check_option("--window", window, number(above=0.0))
    check_option("--stride", stride, number(above=0.0))
    check_option("--contact-distance", contact_distance, number(0.0))
    axis = None
    if heading is not None:
        axis = tuple(part.strip() for part in heading.split(","))
        if len(axis) != 2 or not all(axis):
            raise FommError(f"--heading must be two keypoint names tail,head, got '{heading}'")
    check_outputs({"--out": out, "--graphs": graphs}, [tracks])
    config = FeatureConfig(window_seconds=tuple(window) if window else FeatureConfig().window_seconds,
                           stride_seconds=stride, heading=axis)
    options = InteractionConfig(contact_distance=contact_distance)
    loaded = load_tracks(tracks)
    if axis is not None and any(name not in loaded.keypoint_names for name in axis):
        raise FommError(f"--heading names keypoints that {tracks} does not have ({', '.join(loaded.keypoint_names)})")
    if loaded.num_subjects > 1:
        config = resolve_config(loaded, config)  # once, for the table and the graphs
    table = interaction_features(loaded, config, options)
    windows = None if graphs is None else interaction_graphs(loaded, config, options)
    with all_or_nothing(out, graphs):
        save_features(table, out)
        if windows is not None:
            save_interaction_graphs(windows, graphs, loaded.video)
    message = f"{table.values.shape[0]} windows x {table.values.shape[1]} interaction features of " \
              f"{loaded.num_subjects} subjects -> {out}" + (f", graphs {graphs}" if graphs is not None else "")
    console.print(message)
