"""A window on screen showing each frame with its keypoints (``fomm-kp live --show``), through OpenCV."""

from __future__ import annotations

import numpy as np

from fomm_kp.errors import FommError
from fomm_kp.optional import require
from fomm_kp.viz import draw_keypoints, keypoint_colors

__all__ = ["Window", "check_display"]


def check_display() -> None:
    """Raise :class:`FommError` (one line) unless OpenCV can open a window here."""
    Window("fomm-kp", 1).close()


class Window:
    """Shows frames with their keypoints; the ``q`` or Esc key stops the run as Ctrl-C does.

    Needs OpenCV built with a GUI (``pip install opencv-python``; the ``-headless`` builds have none)
    and a display.
    """

    def __init__(self, title: str, num_keypoints: int) -> None:
        self.cv2 = require("cv2", "--show")
        self.title = title
        self.colors = keypoint_colors(num_keypoints)
        try:
            self.cv2.namedWindow(title, self.cv2.WINDOW_NORMAL)
        except self.cv2.error as exc:
            reason = " ".join(str(exc).split())[:120]
            raise FommError(f"--show needs OpenCV with a GUI and a display (pip install opencv-python): {reason}") from None

    def __call__(self, frame: np.ndarray, points: np.ndarray) -> None:
        drawn = draw_keypoints(frame, points, self.colors)
        self.cv2.imshow(self.title, drawn[:, :, ::-1])
        if self.cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            raise KeyboardInterrupt

    def close(self) -> None:
        self.cv2.destroyWindow(self.title)
