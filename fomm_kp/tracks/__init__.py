"""Keypoint tracks: the Tracks type and its file formats."""

from fomm_kp.tracks.core import Tracks, load_tracks, save_tracks

__all__ = ["Tracks", "load_tracks", "save_tracks"]
