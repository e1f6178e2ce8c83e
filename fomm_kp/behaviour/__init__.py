"""Behaviour from keypoint tracks of any tool: per-frame series on a regular grid (timeseries) and
signals (signals), windows and their statistics (windows), features incl. frequency content
(features, frequency), labelled segments (segments), few-shot classifiers (classifiers: the kinds;
temporal: the 1-D network kind; fitting), per-frame labels and bouts (frame_labels), unsupervised
motifs (motifs), study scores (score), report files (report) and pictures (plots)."""
