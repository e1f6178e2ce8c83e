"""fomm_kp: self-supervised keypoint discovery in video with First Order Motion Models.

    import fomm_kp
    model = fomm_kp.train("mouse.mp4", "runs/mouse", minutes=10)
    tracks = fomm_kp.track("mouse.mp4", model, out="tracks.npz", overlay="overlay.mp4")
    fomm_kp.animate("photo.png", "driving.mp4", model, "animation.mp4", side_by_side=True)
"""

from fomm_kp.animate import animate
from fomm_kp.api import load_model, track, train
from fomm_kp.config import Config, load_config
from fomm_kp.errors import FommError
from fomm_kp.inference import Detections, Model
from fomm_kp.tracks import Tracks, load_tracks, save_tracks

__version__ = "0.1.0"

__all__ = [
    "train",
    "load_model",
    "track",
    "animate",
    "Model",
    "Detections",
    "Tracks",
    "load_tracks",
    "save_tracks",
    "Config",
    "load_config",
    "FommError",
    "__version__",
]
