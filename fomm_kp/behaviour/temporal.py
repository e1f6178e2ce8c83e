"""The ``temporal`` classifier kind: a small dilated 1-D convolutional network over the per-frame
egocentric pose and motion signals of each window (:func:`fomm_kp.behaviour.signals.frame_signals`).

Its weights are stored in the :class:`~fomm_kp.behaviour.classifiers.Classifier`'s arrays
(``net.<name>``), so it is saved and loaded like every other kind, without pickles.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fomm_kp.behaviour.classifiers import CLIP, TEMPORAL, Classifier, ClassifierOptions, feature_standardisation
from fomm_kp.behaviour.segments import Segment, window_labels
from fomm_kp.behaviour.signals import FrameSignals, frame_signals
from fomm_kp.behaviour.windows import FeatureConfig, window_bounds
from fomm_kp.errors import FommError
from fomm_kp.tracks import Tracks

__all__ = ["TemporalNet", "WindowPredictions", "fit_temporal", "predict_temporal"]

log = logging.getLogger(__name__)

BATCH = 16


class TemporalNet(nn.Module):
    """Two dilated 1-D convolutions, mean+max pooling over time, a linear head.

    Input ``(B, C, L)`` standardised signals; output ``(B, classes)`` logits.
    """

    def __init__(self, channels: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels, hidden, 5, padding=2)
        self.conv2 = nn.Conv1d(hidden, hidden, 5, padding=4, dilation=2)
        self.head = nn.Linear(2 * hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.conv1(x))
        h = F.gelu(self.conv2(h)) + h
        return self.head(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))


class WindowPredictions(NamedTuple):
    """Class probabilities of each window ``(W, C)`` and the windows' frame spans ``[start, end)``."""

    probabilities: np.ndarray
    start_frames: np.ndarray
    end_frames: np.ndarray


def _signal_windows(sig: FrameSignals, config: FeatureConfig) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Input rows (longest window) and output spans (first window) of each window, in grid rows."""
    bounds = window_bounds(len(sig.frame_indices), sig.fps, config)
    (a0, b0), (al, bl) = bounds[0], bounds[-1]
    return list(zip(al.tolist(), bl.tolist())), a0, b0


def _samples(pairs: Sequence[tuple[Tracks, list[Segment]]], config: FeatureConfig,
             ) -> tuple[list[tuple[np.ndarray, str]], tuple[str, ...]]:
    """Labelled windows of per-frame signals ``(L, C)`` from tracks and their segments; the channel names."""
    samples: list[tuple[np.ndarray, str]] = []
    channel_names: tuple[str, ...] | None = None
    for tracks, segments in pairs:
        sig = frame_signals(tracks, config)
        channel_names = channel_names or sig.names
        if sig.names != channel_names:
            raise FommError("training tracks have different keypoints")
        inputs, a0, b0 = _signal_windows(sig, config)
        labels = window_labels(sig.frame_indices[a0], sig.frame_indices[b0 - 1] + sig.step, segments)
        samples += [(sig.values[a:b], str(label)) for (a, b), label in zip(inputs, labels) if label]
    return samples, channel_names or ()


def _batch(z_samples: list[np.ndarray], index: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Random equal-length stretches of the chosen samples, with a small amplitude jitter: ``(B, C, L)``."""
    length = min(len(z_samples[i]) for i in index)
    crops = []
    for i in index:
        offset = int(rng.integers(0, len(z_samples[i]) - length + 1))
        crops.append((z_samples[i][offset:offset + length] * rng.uniform(0.9, 1.1)).T)
    return torch.from_numpy(np.stack(crops).astype(np.float32))


def fit_temporal(pairs: Sequence[tuple[Tracks, list[Segment]]], config: FeatureConfig,
                 options: ClassifierOptions) -> Classifier:
    """Fit the temporal network on the labelled windows of tracks (class-balanced batches)."""
    samples, channel_names = _samples(pairs, config)
    classes = tuple(sorted({label for _, label in samples}))
    if len(classes) < 2:
        raise FommError(f"need examples of at least 2 behaviours, got {list(classes)}")
    mean, scale = feature_standardisation(np.concatenate([s for s, _ in samples]))
    rng = np.random.default_rng(options.seed)
    torch.manual_seed(options.seed)
    net = TemporalNet(len(mean), options.temporal_hidden, len(classes))
    optimizer = torch.optim.AdamW(net.parameters(), lr=options.temporal_lr, weight_decay=1e-3)
    targets = np.array([classes.index(label) for _, label in samples])
    weights = 1.0 / np.bincount(targets, minlength=len(classes))[targets]
    weights /= weights.sum()
    z_samples = [np.clip(np.nan_to_num((s - mean) / scale, nan=0.0), -CLIP, CLIP).astype(np.float32) for s, _ in samples]
    log.info("training a temporal classifier on %d windows of %d classes for %d steps", len(samples), len(classes),
             options.temporal_steps)
    net.train()
    for _ in range(options.temporal_steps):
        index = rng.choice(len(samples), size=BATCH, p=weights)
        loss = F.cross_entropy(net(_batch(z_samples, index, rng)), torch.from_numpy(targets[index]), label_smoothing=0.05)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    params = {"hidden": options.temporal_hidden, "final_loss": float(loss.item())}
    return Classifier(TEMPORAL, classes, channel_names, mean, scale, arrays, params, config.to_dict())


def predict_temporal(clf: Classifier, tracks: Tracks) -> WindowPredictions:
    """Class probabilities of each window of ``tracks`` (windows cut with the classifier's own settings)."""
    config = FeatureConfig.from_dict(clf.feature_config)
    sig = frame_signals(tracks, config)
    if sig.names != clf.feature_names:
        raise FommError(f"these tracks give signals {list(sig.names)[:4]}... but the classifier was trained on "
                        f"{list(clf.feature_names)[:4]}...")
    net = TemporalNet(len(clf.mean), int(clf.params["hidden"]), clf.num_classes)
    net.load_state_dict({k.removeprefix("net."): torch.from_numpy(np.asarray(v))
                         for k, v in clf.arrays.items() if k.startswith("net.")})
    net.eval()
    z = clf.standardise(sig.values).astype(np.float32)
    inputs, a0, b0 = _signal_windows(sig, config)
    probs = np.zeros((len(inputs), clf.num_classes))
    with torch.no_grad():
        for length in sorted({b - a for a, b in inputs}):
            rows = [i for i, (a, b) in enumerate(inputs) if b - a == length]
            x = torch.from_numpy(np.stack([z[inputs[i][0]:inputs[i][1]].T for i in rows]))
            probs[rows] = torch.softmax(net(x), dim=1).numpy()
    return WindowPredictions(probs, sig.frame_indices[a0], sig.frame_indices[b0 - 1] + sig.step)
