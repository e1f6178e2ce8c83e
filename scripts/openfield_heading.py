"""How well the subject's heading (the angle crops are turned by) follows the labelled body axis.

On DeepLabCut's open-field mouse, the 116 labelled ``m4s1`` images: each image is localised on its
own (background: the median of the images, as in ``scripts/openfield_accuracy.py``) and its heading
(:attr:`fomm_kp.localize.Blob.heading`) compared with the labelled tail base → snout direction. Three
cues, all from :mod:`fomm_kp.localize` settings:

- ``shipped``: the core's principal axis pointed away from the appendages, or the appendages'
  direction when the core is round (elongation below ``axis_min_elongation``);
- ``appendages only``: always the direction from the appendages' centroid to the core's
  (``axis_min_elongation`` = ∞);
- ``core axis (as an axis)``: the core's principal axis, its error taken modulo a half turn
  (``axis_min_elongation`` = 0), i.e. how well the axis alone lies along the body.

    python scripts/openfield_heading.py [--data ../shared/data/dlc-openfield] [--out runs/heading.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "dlc-openfield"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the dlc-openfield folder")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    from fomm_kp.config import LocalizeConfig
    from fomm_kp.evaluation.labels import load_labels
    from fomm_kp.files import atomic_write
    from fomm_kp.localize.background import background_from_frames
    from fomm_kp.localize.boxes import boxes_for_frames

    labels_file = args.data / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv"
    if not labels_file.is_file():
        print(f"error: dlc-openfield labels not found under {args.data}", file=sys.stderr)
        return 2
    labelled = load_labels(labels_file)
    images = labelled.load_images()
    body = labelled.points[:, 0] - labelled.points[:, 3]  # tail base → snout
    truth = np.arctan2(body[:, 1], body[:, 0])
    cues = {
        "shipped": (LocalizeConfig(), 2 * np.pi),
        "appendages only": (LocalizeConfig(axis_min_elongation=float("inf")), 2 * np.pi),
        "core axis (as an axis)": (LocalizeConfig(axis_min_elongation=0.0), np.pi),
    }
    background = background_from_frames(images, LocalizeConfig())
    report = {"images": int(len(images)), "cues": {}}
    print(f"{'heading cue':26s} {'median':>7s} {'p95':>7s} {'max':>7s} {'> 30°':>6s}   (degrees, {len(images)} images)")
    for name, (config, period) in cues.items():
        angles = boxes_for_frames(images, background, config).angles.astype(np.float64)
        wrapped = (angles - truth + period / 2) % period - period / 2
        error = np.degrees(np.abs(wrapped))
        row = {"median": float(np.median(error)), "p95": float(np.percentile(error, 95)),
               "max": float(error.max()), "over_30": int((error > 30).sum())}
        report["cues"][name] = row
        print(f"{name:26s} {row['median']:7.1f} {row['p95']:7.1f} {row['max']:7.1f} {row['over_30']:6d}")
    if args.out is not None:
        text = json.dumps(report, indent=2) + "\n"
        atomic_write(args.out, lambda tmp: Path(tmp).write_text(text))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
