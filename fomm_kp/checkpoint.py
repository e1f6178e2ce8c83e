"""Checkpoints: ``{format_version, config, state_dicts, step, meta}``, plain tensors and data only.

Written atomically (temporary file, then rename); read with ``torch.load(weights_only=True)``, so
loading a checkpoint never executes code. A checkpoint is read once per load: :func:`read_checkpoint`
gives a :class:`Checkpoint` with everything a loader needs, where the model looks
(:class:`~fomm_kp.crops.CropSettings`) and which network it holds (``kind``) included, and
:func:`load_weights` is the one place weights go into networks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import torch
from torch import nn

from fomm_kp.config import Config, from_dict, to_dict
from fomm_kp.crops import CropSettings
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write, check_regular

__all__ = ["FORMAT_VERSION", "KINDS", "Checkpoint", "save_checkpoint", "read_checkpoint", "load_weights"]

FORMAT_VERSION = 1
KINDS = ("teacher", "student")  # a trained FOMM (fomm-kp train) or a distilled detector (fomm-kp distill)


class Checkpoint(NamedTuple):
    """What a checkpoint holds; unpacks as ``config, state_dicts, step, meta``."""

    config: Config
    state_dicts: dict[str, Any]
    step: int
    meta: dict[str, Any]

    @property
    def crop(self) -> CropSettings:
        return CropSettings.from_meta(self.meta)

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind", "teacher"))


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


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """The :class:`Checkpoint` in a file, loaded with ``weights_only=True``."""
    path = check_regular(path, "checkpoint")
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
    config = from_dict(payload.get("config"), source=f"{path} (config)")
    state_dicts, step, meta = payload.get("state_dicts"), payload.get("step", 0), payload.get("meta", {})
    if not isinstance(state_dicts, dict) or not all(isinstance(v, dict) for v in state_dicts.values()):
        raise FommError(f"{path} is not a fomm_kp checkpoint (its weights are not named tensors)")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise FommError(f"{path} is not a fomm_kp checkpoint (step {step!r})")
    if not isinstance(meta, dict):
        raise FommError(f"{path} is not a fomm_kp checkpoint (metadata {type(meta).__name__})")
    checkpoint = Checkpoint(config, state_dicts, step, dict(meta))
    if checkpoint.kind not in KINDS:
        raise FommError(f"{path}: unknown checkpoint kind '{checkpoint.kind}'")
    try:
        checkpoint.crop  # read once here, so that bad crop settings are refused with the file's name
    except FommError as exc:
        raise FommError(f"{path}: {exc}") from None
    return checkpoint


def load_weights(modules: Mapping[str, nn.Module | None], state_dicts: Mapping[str, Any], source: object) -> None:
    """Load ``state_dicts[name]`` into each module (None: the network has no such part).

    A missing or mismatching state dict is a :class:`FommError` naming ``source``: the weights do not
    match the config the checkpoint carries.
    """
    for name, module in modules.items():
        if module is None:
            continue
        if name not in state_dicts:
            raise FommError(f"{source}: no {name} weights: the weights do not match the config they carry")
        try:
            module.load_state_dict(state_dicts[name])
        except RuntimeError as exc:
            raise FommError(f"{source}: {name} weights do not match the config they carry "
                            f"({str(exc).splitlines()[0]})") from None
