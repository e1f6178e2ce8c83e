"""Live: keypoints and behaviour labels from a camera, a file or a network stream, as they happen.

:mod:`~fomm_kp.live.sources` reads frames on a background thread (newest frame wins; reconnects);
:mod:`~fomm_kp.live.rolling` labels a rolling window of keypoints and follows bouts;
:mod:`~fomm_kp.live.events` writes JSON lines; :mod:`~fomm_kp.live.loop` runs frame after frame;
:mod:`~fomm_kp.live.session` is the verb :func:`live`; :mod:`~fomm_kp.live.display` a window on screen.
"""

from fomm_kp.live.loop import LiveOptions, LiveSummary, Status
from fomm_kp.live.session import live
from fomm_kp.live.sources import SourceOptions

__all__ = ["live", "LiveOptions", "SourceOptions", "LiveSummary", "Status"]
