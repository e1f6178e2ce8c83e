"""Checkpoints: ``{format_version, config, state_dicts, step, meta}``, plain tensors and data only.

Written atomically (temporary file, then rename); read with ``torch.load(weights_only=True)``, so
loading a checkpoint never executes code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from fomm_kp.config import Config, from_dict, to_dict
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write

__all__ = ["FORMAT_VERSION", "save_checkpoint", "read_checkpoint"]

FORMAT_VERSION = 1


def save_checkpoint(
    path: str | os.PathLike,
    config: Config,
    state_dicts: dict[str, dict[str, torch.Tensor]],
    step: int,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically. ``meta`` must be plain data (str, numbers, lists, dicts)."""
    payload = {
        "format_version": FORMAT_VERSION,
        "config": to_dict(config),
        "state_dicts": {name: {k: v.detach().cpu() for k, v in sd.items()} if _is_tensor_dict(sd) else sd
                        for name, sd in state_dicts.items()},
        "step": int(step),
        "meta": meta or {},
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _is_tensor_dict(sd: Any) -> bool:
    return isinstance(sd, dict) and all(isinstance(v, torch.Tensor) for v in sd.values())


def read_checkpoint(path: str | os.PathLike) -> tuple[Config, dict[str, Any], int, dict[str, Any]]:
    """``(config, state_dicts, step, meta)`` from a checkpoint file, loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise FommError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FommError(f"{path} is not a fomm_kp checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise FommError(f"{path} is not a fomm_kp checkpoint (no format_version)")
    if payload["format_version"] != FORMAT_VERSION:
        raise FommError(f"{path} has checkpoint format {payload['format_version']}; this fomm_kp reads {FORMAT_VERSION}")
    config = from_dict(payload["config"], source=f"{path} (config)")
    return config, payload["state_dicts"], int(payload.get("step", 0)), dict(payload.get("meta", {}))
