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
from fomm_kp.errors import FommError
from fomm_kp.files import refuse_overwriting_inputs
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
    if out.suffix.lower() not in (".npz", ".csv"):
        raise FommError(f"--out {out}: use .npz or .csv")
    if graphs is not None and graphs.suffix.lower() != ".json":
        raise FommError(f"--graphs {graphs}: use .json")
    axis = None
    if heading is not None:
        axis = tuple(part.strip() for part in heading.split(","))
        if len(axis) != 2 or not all(axis):
            raise FommError(f"--heading must be two keypoint names tail,head, got '{heading}'")
    refuse_overwriting_inputs({"--out": out, "--graphs": graphs}, [tracks])
    config = FeatureConfig(window_seconds=tuple(window) if window else FeatureConfig().window_seconds,
                           stride_seconds=stride, heading=axis)
    options = InteractionConfig(contact_distance=contact_distance)
    loaded = load_tracks(tracks)
    if axis is not None and any(name not in loaded.keypoint_names for name in axis):
        raise FommError(f"--heading names keypoints that {tracks} does not have ({', '.join(loaded.keypoint_names)})")
    if loaded.num_subjects > 1:
        config = resolve_config(loaded, config)  # once, for the table and the graphs
    table = interaction_features(loaded, config, options)
    save_features(table, out)
    message = f"{table.values.shape[0]} windows x {table.values.shape[1]} interaction features of " \
              f"{loaded.num_subjects} subjects -> {out}"
    if graphs is not None:
        save_interaction_graphs(interaction_graphs(loaded, config, options), graphs, loaded.video)
        message += f", graphs {graphs}"
    console.print(message)
