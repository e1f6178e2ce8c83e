"""How good the results are, measured with published protocols beside baselines.

Keypoints against hand labels (labels: DeepLabCut/SLEAP label files; regression: k-fold ridge and
affine fits; keypoints: the protocol and its table; harness: models and baselines run on labelled
images), behaviour from a few examples (clips: labelled clips and the pixel baseline; behaviour:
N-way K-shot episodes, leave-one-group-out), and video reconstruction (reconstruction: L1, and
AKD/MKR with face landmarks from landmarks)."""
