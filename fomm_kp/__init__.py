"""fomm_kp: self-supervised keypoint discovery in video with First Order Motion Models.

    import fomm_kp
    model = fomm_kp.train("mouse.mp4", "runs/mouse", minutes=10)
    tracks = fomm_kp.track("mouse.mp4", model, out="tracks.npz", overlay="overlay.mp4")
    clf = fomm_kp.fit_classifier(fomm_kp.motion_features(tracks), "labels.csv")
"""

from fomm_kp.animation.render import PanelOptions, TransferOptions, animate
from fomm_kp.api import load_model, track, train
from fomm_kp.behaviour.classifiers import load_classifier
from fomm_kp.behaviour.features import motion_features
from fomm_kp.behaviour.fitting import fit_classifier
from fomm_kp.behaviour.frame_labels import classify
from fomm_kp.behaviour.interactions import InteractionConfig, interaction_features, interaction_graphs
from fomm_kp.behaviour.motifs import find_motifs
from fomm_kp.behaviour.report import ScoreReport, score
from fomm_kp.config import Config, load_config
from fomm_kp.deploy.distill import distill
from fomm_kp.deploy.export import OnnxOptions, export
from fomm_kp.deploy.tensorrt import EngineOptions
from fomm_kp.errors import FommError
from fomm_kp.evaluation.harness import evaluate_labels
from fomm_kp.evaluation.keypoints import CrossValidation
from fomm_kp.progress import Progress, Update
from fomm_kp.runtime import Detections, Model
from fomm_kp.tracks import Tracks, load_tracks, save_tracks
from fomm_kp.tracks.nwb import NwbSubject
from fomm_kp.tracks.smoothing import Smoothing, smooth_tracks
from fomm_kp.video import FrameRange

__version__ = "0.1.0"

__all__ = [
    "train",
    "load_model",
    "track",
    "motion_features",
    "interaction_features",
    "interaction_graphs",
    "fit_classifier",
    "classify",
    "load_classifier",
    "score",
    "find_motifs",
    "animate",
    "distill",
    "export",
    "evaluate_labels",
    "Model",
    "Detections",
    "Tracks",
    "load_tracks",
    "save_tracks",
    "smooth_tracks",
    "Config",
    "load_config",
    "FommError",
    # the options objects the verbs above take, and what they return or report
    "FrameRange",
    "Smoothing",
    "TransferOptions",
    "PanelOptions",
    "OnnxOptions",
    "EngineOptions",
    "CrossValidation",
    "InteractionConfig",
    "NwbSubject",
    "ScoreReport",
    "Progress",
    "Update",
    "__version__",
]
