"""Keypoint tracks: the :class:`Tracks` type every downstream part consumes, and its file formats.

Our ``.npz`` is a lossless round trip (:mod:`~fomm_kp.tracks.npz`); DeepLabCut ``.csv``/``.h5`` are
read and ``.csv`` written in :mod:`~fomm_kp.tracks.dlc` (``.h5`` through h5py as numbers and text,
never unpickled: :mod:`~fomm_kp.tracks.dlc_h5`; DeepLabCut files carry no frame rate: pass ``fps``,
default 30 with a logged warning); SLEAP ``.slp`` (:mod:`~fomm_kp.tracks.sleap`) and NWB
(:mod:`~fomm_kp.tracks.nwb`) need the ``interop`` extra, imported only when such a file is read or
written. :mod:`~fomm_kp.tracks.io` holds the one table of suffixes.
"""

from fomm_kp.tracks.core import Tracks
from fomm_kp.tracks.io import load_tracks, save_tracks

__all__ = ["Tracks", "load_tracks", "save_tracks"]
