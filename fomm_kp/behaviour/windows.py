"""How windows are cut from per-frame signals, and the statistics taken over them.

:class:`FeatureConfig` holds every setting of behaviour features (windows, gap filling, which
feature groups); :func:`window_bounds` cuts windows of several lengths around shared centres and
:func:`window_stats` takes NaN-ignoring statistics over them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.settings import FRACTION, check, each, flag, from_data, integer, number, refuse, text, to_data

__all__ = ["FeatureConfig", "window_bounds", "window_stats", "displacement"]

PAIR = each(number(0.0), 2)


@dataclass(frozen=True)
class FeatureConfig:
    """How windows are cut and which feature groups are computed.

    Attributes:
        window_seconds: window lengths, shortest first; the first one defines each window's
            frame span (``Features.start_frames/end_frames``) used for per-frame labels.
        stride_seconds: step between window centres.
        min_score: points with a lower confidence count as missing.
        max_gap_seconds: gaps up to this long are interpolated; longer ones stay missing.
        derivative_seconds: Savitzky–Golay window for derivatives (at least 5 samples).
        egocentric: align poses to the centroid and body heading.
        heading: ``(tail, head)`` keypoint names defining the body axis; None = principal axis.
        heading_reference: with the principal axis, the keypoint whose side the axis points to.
            None = the keypoint farthest from the centroid on average, chosen per call and
            recorded in ``Features.config``; use :func:`resolve_config` to fix it once for
            several recordings so that they share one body frame.
        pairwise: pairwise distances and pair angles (K·(K−1)/2 pairs).
        jacobians: local rotation/scale rates when the tracks carry jacobians.
        confidence: score statistics and missing fractions.
        bands_hz: Welch band edges; empty turns the Welch features off.
        wavelet_num_freqs: Morlet wavelet frequencies per keypoint (0 = off).
        wavelet_range_hz: ``(f_min, f_max)`` of the wavelet frequencies.
    """

    window_seconds: tuple[float, ...] = (0.5, 2.0)
    stride_seconds: float = 0.25
    min_score: float = 0.0
    max_gap_seconds: float = 0.5
    derivative_seconds: float = 0.2
    egocentric: bool = True
    heading: tuple[str, str] | None = None
    heading_reference: str | None = None
    pairwise: bool = True
    jacobians: bool = True
    confidence: bool = True
    bands_hz: tuple[tuple[float, float], ...] = ((0.5, 2.0), (2.0, 5.0), (5.0, 15.0))
    wavelet_num_freqs: int = 0
    wavelet_range_hz: tuple[float, float] = (0.5, 12.0)

    def __post_init__(self) -> None:
        check(self, window_seconds=each(number(above=0.0)), stride_seconds=number(above=0.0), min_score=FRACTION,
              max_gap_seconds=number(0.0), derivative_seconds=number(above=0.0), egocentric=flag(),
              pairwise=flag(), jacobians=flag(), confidence=flag(), wavelet_num_freqs=integer(0, 256),
              wavelet_range_hz=each(number(above=0.0), 2))
        object.__setattr__(self, "window_seconds", tuple(float(w) for w in self.window_seconds))
        bands = self.bands_hz
        if not isinstance(bands, (tuple, list)) or any(
                not PAIR.allows(band) or len(band) != 2 or not band[0] < band[1] for band in bands):
            refuse(self, "bands_hz", "(low, high) pairs with 0 <= low < high")
        object.__setattr__(self, "bands_hz", tuple((float(lo), float(hi)) for lo, hi in bands))
        low, high = self.wavelet_range_hz
        if len(self.wavelet_range_hz) != 2 or not low < high:
            refuse(self, "wavelet_range_hz", "(f_min, f_max) with 0 < f_min < f_max")
        object.__setattr__(self, "wavelet_range_hz", (float(low), float(high)))
        if self.heading is not None:
            if not each(text(), 2).allows(self.heading) or len(self.heading) != 2:
                refuse(self, "heading", "two keypoint names (tail, head)")
            object.__setattr__(self, "heading", tuple(self.heading))
        if self.heading_reference is not None and not isinstance(self.heading_reference, str):
            refuse(self, "heading_reference", "a keypoint name")

    def to_dict(self) -> dict:
        """Plain JSON-able data (tuples become lists)."""
        return to_data(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        """Build from :meth:`to_dict` output, strictly (:func:`fomm_kp.settings.from_data`)."""
        return from_data(cls, data, "feature config")


def window_bounds(num_rows: int, fs: float, config: FeatureConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Row ranges ``[a, b)`` of every window for each window length, sharing centres.

    The first (shortest) length tiles the rows with stride ``stride_seconds``: full windows from
    the start, plus one final window that ends at the last row, so every row lies in some window.
    Longer windows are centred on the same centres where they fit and shifted inward at the ends
    of the recording, so each keeps its full length (or spans every row of a shorter recording)
    and holds the short window that shares its centre.
    """
    lengths = [max(2, int(round(w * fs))) for w in config.window_seconds]
    stride = max(1, int(round(config.stride_seconds * fs)))
    first = min(lengths[0], num_rows)
    starts = list(range(0, num_rows - first + 1, stride))
    if starts[-1] + first < num_rows:
        starts.append(num_rows - first)
    starts_arr = np.asarray(starts, dtype=np.int64)
    centres = starts_arr + first / 2.0
    out = []
    for length in lengths:
        a = np.clip(np.round(centres - length / 2.0).astype(np.int64), 0, None)
        b = np.minimum(a + length, num_rows)
        a = np.maximum(np.minimum(a, b - length), 0)
        out.append((a, b))
    out[0] = (starts_arr, starts_arr + first)
    return out


def window_stats(x: np.ndarray, a: np.ndarray, b: np.ndarray, stat: str) -> np.ndarray:
    """NaN-ignoring statistic of ``x (T, C)`` over each window ``[a, b)``: ``(W, C)``."""
    valid = np.isfinite(x)
    x0 = np.where(valid, x, 0.0)
    zero = np.zeros((1, x.shape[1]))
    count = np.concatenate([zero, np.cumsum(valid, axis=0)])
    n = count[b] - count[a]
    with np.errstate(invalid="ignore", divide="ignore"):
        if stat in ("mean", "std", "absmean"):
            src = np.abs(x0) if stat == "absmean" else x0
            csum = np.concatenate([zero, np.cumsum(src, axis=0)])
            mean = (csum[b] - csum[a]) / n
            if stat != "std":
                return np.where(n > 0, mean, np.nan)
            csq = np.concatenate([zero, np.cumsum(x0**2, axis=0)])
            var = (csq[b] - csq[a]) / n - mean**2
            return np.where(n > 1, np.sqrt(np.maximum(var, 0.0)), np.nan)
    if stat in ("max", "min"):
        fill = -np.inf if stat == "max" else np.inf
        filled = np.where(valid, x, fill)
        reduce = np.max if stat == "max" else np.min
        out = np.stack([reduce(filled[s:e], axis=0) for s, e in zip(a, b)])
        return np.where(np.isfinite(out), out, np.nan)
    raise FommError(f"unknown window statistic '{stat}'")


def displacement(pos: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between the first and last positions of each window: ``pos (T, C, 2)`` → ``(W, C)``."""
    return np.linalg.norm(pos[b - 1] - pos[a], axis=-1)
