"""Optional dependencies: imported when a feature needs them, or one line saying which extra installs them."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from fomm_kp.errors import FommError

__all__ = ["require", "available"]

# The pip extra of each optional module (pyproject's optional-dependencies).
EXTRAS = {
    "onnx": "deploy", "onnxruntime": "deploy", "sleap_io": "interop", "pynwb": "interop", "ndx_pose": "interop",
    "h5py": "interop", "tables": "interop", "dlib": "faces", "face_recognition_models": "faces", "face_alignment": "faces-fan",
}


def available(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, what: str) -> ModuleType:
    """Import the optional ``module``, or raise :class:`FommError`: ``what`` needs it, and the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = EXTRAS.get(module)
        hint = f'pip install "fomm_kp[{extra}]"' if extra else f"pip install {module}"
        raise FommError(f"{what} needs the optional package '{module}': {hint}") from exc
