"""Frequency content of keypoint signals: Welch spectra per window and a Morlet wavelet spectrogram.

Welch features (per window, per signal): log band powers, the dominant frequency in Hz (refined
by a parabola through the peak bin) and the normalised spectral entropy. The wavelet spectrogram
follows MotionMapper (Berman et al. 2014): a complex Morlet transform at log-spaced frequencies,
amplitude per frame. PyWavelets does the transform (``scipy.signal.cwt`` was removed in SciPy 1.15).
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import pywt
from scipy.signal import welch

from fomm_kp.errors import FommError

__all__ = [
    "WAVELET",
    "welch_window_features",
    "dominant_frequency",
    "wavelet_frequencies",
    "wavelet_spectrogram",
]

log = logging.getLogger(__name__)

WAVELET = "cmor1.5-1.0"  # complex Morlet, bandwidth 1.5, centre frequency 1 (per sample unit)
_EPS = 1e-12


def _detrend(x: np.ndarray) -> np.ndarray:
    """Remove a least-squares line along axis -2 of ``x (..., L, C)``."""
    n = x.shape[-2]
    mean = x.mean(axis=-2, keepdims=True)
    if n < 2:
        return x - mean
    t = (np.arange(n, dtype=np.float64) - (n - 1) / 2.0)[:, None]
    slope = (t * x).sum(axis=-2, keepdims=True) / (t**2).sum()
    return x - mean - t * slope


def _spectrum(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density along axis -2 of ``x (..., L, C)``: ``(freqs (F,), psd (..., F, C))``."""
    n = x.shape[-2]
    nperseg = n if n < 16 else max(16, n // 2)  # two half-overlapping segments once there is room
    freqs, psd = welch(x, fs=fs, nperseg=nperseg, noverlap=nperseg // 2, window="hann", detrend=False, axis=-2)
    return freqs, psd


def dominant_frequency(freqs: np.ndarray, psd: np.ndarray) -> np.ndarray:
    """Frequency of the largest non-DC peak of ``psd (F, C)``, refined by a parabola: ``(C,)`` Hz."""
    if len(freqs) < 3:
        return np.full(psd.shape[1], np.nan)
    body = psd[1:]
    peak = np.argmax(body, axis=0) + 1
    out = freqs[peak].astype(np.float64)
    df = freqs[1] - freqs[0]
    inner = (peak > 1) & (peak < len(freqs) - 1)
    cols = np.nonzero(inner)[0]
    if cols.size:
        p = peak[cols]
        y0, y1, y2 = psd[p - 1, cols], psd[p, cols], psd[p + 1, cols]
        denom = y0 - 2 * y1 + y2
        offset = np.where(np.abs(denom) > _EPS, 0.5 * (y0 - y2) / np.where(np.abs(denom) > _EPS, denom, 1.0), 0.0)
        out[cols] = freqs[p] + np.clip(offset, -0.5, 0.5) * df
    flat = body.max(axis=0) <= _EPS
    out[flat] = np.nan
    return out


def welch_window_features(
    signals: np.ndarray,
    fs: float,
    starts: np.ndarray,
    ends: np.ndarray,
    bands_hz: Sequence[tuple[float, float]],
    group: np.ndarray,
    min_valid_fraction: float = 0.5,
) -> tuple[np.ndarray, list[str]]:
    """Spectral features of ``signals (T, C)`` over windows ``[starts[w], ends[w])``.

    Columns are summed into groups before the spectrum is summarised (``group (C,)`` gives the
    group of each column, e.g. x and y of one keypoint share a group), so a keypoint that moves
    along any direction is one signal. Each window is linearly detrended; NaNs that remain are
    set to the window mean when at least ``min_valid_fraction`` of the window is valid, else that
    group's features are NaN.

    Returns:
        ``(values (W, G * (len(bands_hz) + 2)), stat_names)`` with per group: ``log10`` band powers
        (px²), ``dominant_hz`` and ``spectral_entropy`` (0 = one line, 1 = white noise).
    """
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim != 2:
        raise FommError(f"signals must be (T, C), got {signals.shape}")
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    group = np.asarray(group)
    groups = np.unique(group)
    onehot = (group[:, None] == groups[None, :]).astype(np.float64)  # (C, G)
    n_stats = len(bands_hz) + 2
    out = np.full((len(starts), len(groups), n_stats), np.nan, dtype=np.float64)
    lengths = ends - starts
    for length in np.unique(lengths):
        if length < 4:
            continue
        rows = np.nonzero(lengths == length)[0]
        x = signals[starts[rows, None] + np.arange(length)[None, :]]  # (R, L, C)
        valid = ~np.isnan(x)
        usable = valid.mean(axis=1) >= min_valid_fraction  # (R, C)
        means = np.where(valid, x, 0.0).sum(axis=1, keepdims=True) / np.maximum(valid.sum(axis=1, keepdims=True), 1)
        x = np.where(valid, x, means)
        freqs, psd = _spectrum(_detrend(x), fs)  # (R, F, C)
        p = psd @ onehot  # (R, F, G): columns of a group summed
        group_ok = (usable.astype(np.float64) @ onehot) >= onehot.sum(axis=0)[None]  # (R, G)
        df = freqs[1] - freqs[0]
        block = np.full((len(rows), len(groups), n_stats), np.nan)
        for bi, (lo, hi) in enumerate(bands_hz):
            sel = (freqs >= lo) & (freqs < hi)
            block[:, :, bi] = np.log10(p[:, sel].sum(axis=1) * df + _EPS)  # rectangle rule; empty band ~ -12
        flat = p.transpose(1, 0, 2).reshape(len(freqs), -1)  # (F, R*G)
        block[:, :, -2] = dominant_frequency(freqs, flat).reshape(len(rows), len(groups))
        body = p[:, 1:]
        total = body.sum(axis=1)  # (R, G)
        if body.shape[1] > 1:
            q = body / np.where(total > _EPS, total, 1.0)[:, None]
            entropy = -(q * np.log(q + _EPS)).sum(axis=1) / np.log(body.shape[1])
            block[:, :, -1] = np.where(total > _EPS, entropy, np.nan)
        block[~group_ok] = np.nan
        out[rows] = block
    names = [f"power[{lo:g}-{hi:g}Hz]" for lo, hi in bands_hz] + ["dominant_hz", "spectral_entropy"]
    return out.reshape(len(starts), -1), names


def wavelet_frequencies(f_min: float, f_max: float, num: int, fs: float) -> np.ndarray:
    """``num`` log-spaced frequencies in ``[f_min, f_max]`` Hz, capped below Nyquist."""
    nyquist = fs / 2.0
    if not 0 < f_min < f_max:
        raise FommError(f"wavelet frequency range must satisfy 0 < f_min < f_max, got ({f_min}, {f_max})")
    if f_min >= nyquist:
        raise FommError(f"wavelet f_min {f_min} Hz is at or above the Nyquist frequency {nyquist} Hz of this video")
    f_max = min(f_max, 0.95 * nyquist)
    return np.geomspace(f_min, f_max, num)


def wavelet_spectrogram(signals: np.ndarray, fs: float, freqs: np.ndarray) -> np.ndarray:
    """Morlet wavelet amplitude of ``signals (T, C)`` at ``freqs (F,)`` Hz: ``(T, F, C)``.

    NaNs are linearly interpolated (held at the ends) before the transform; a column with no
    valid sample stays NaN. Amplitudes are ``|cwt| / sqrt(scale)`` as in MotionMapper, so a
    sinusoid of a given amplitude gives a similar peak at any frequency.
    """
    signals = np.asarray(signals, dtype=np.float64)
    if signals.ndim != 2:
        raise FommError(f"signals must be (T, C), got {signals.shape}")
    t, c = signals.shape
    filled = np.empty_like(signals)
    dead = np.zeros(c, dtype=bool)
    idx = np.arange(t)
    for j in range(c):
        ok = ~np.isnan(signals[:, j])
        if not ok.any():
            dead[j] = True
            filled[:, j] = 0.0
        else:
            filled[:, j] = np.interp(idx, idx[ok], signals[ok, j])
    filled -= filled.mean(axis=0, keepdims=True)
    scales = pywt.frequency2scale(WAVELET, np.asarray(freqs, dtype=np.float64) / fs)
    method = "fft" if t > 256 else "conv"
    coefs, _ = pywt.cwt(filled, scales, WAVELET, sampling_period=1.0 / fs, method=method, axis=0)
    amplitude = np.abs(coefs) / np.sqrt(scales)[:, None, None]  # (F, T, C)
    amplitude = np.transpose(amplitude, (1, 0, 2)).astype(np.float32)
    amplitude[:, :, dead] = np.nan
    return amplitude
