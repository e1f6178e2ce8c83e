"""Find and follow a small subject in a large, static frame, and the crop rule built on it.

A mouse in a 640×480 arena covers a few percent of the frame; a keypoint model that sees the whole
frame at 64–128 px spends its capacity on the arena. This package finds the subject in every frame
(:mod:`~fomm_kp.localize.background`: a median background; :mod:`~fomm_kp.localize.blobs`: the
foreground's largest component, its moments and heading), follows it smoothly over time
(:mod:`~fomm_kp.localize.smoothing`, :mod:`~fomm_kp.localize.boxes`: one square box per frame),
decides when to do so (:mod:`~fomm_kp.localize.decisions`), and owns the crop rule
(:mod:`~fomm_kp.localize.crop_rule`): which box a model learns from and looks at. Keypoints found in
a crop go back to the frame through :mod:`fomm_kp.crops`.
"""

from fomm_kp.localize.background import Background, background_from_frames, estimate_background
from fomm_kp.localize.blobs import Blob, blob_moments, find_subject
from fomm_kp.localize.boxes import SubjectBoxes, boxes_for_frames, boxes_for_video, boxes_from_blobs
from fomm_kp.localize.crop_rule import SubjectCrops, image_crops, model_crops, subject_crops, training_crops
from fomm_kp.localize.decisions import LocalizeDecision, decide, decide_from_blobs, should_align

__all__ = [
    "Background", "background_from_frames", "estimate_background", "Blob", "blob_moments", "find_subject",
    "SubjectBoxes", "boxes_for_frames", "boxes_for_video", "boxes_from_blobs", "SubjectCrops", "image_crops",
    "model_crops", "subject_crops", "training_crops", "LocalizeDecision", "decide", "decide_from_blobs", "should_align",
]
