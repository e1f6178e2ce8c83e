"""Where the foreground prior applies: ``data.foreground: auto`` decided on the development videos.

For each video the localisation decision (:func:`fomm_kp.localize.decide`, the default
:class:`~fomm_kp.config.LocalizeConfig`) is taken as training takes it, and the table says whether
one distinct subject stands out (found in most sampled frames and holding most of the change:
``distinct``, which turns the prior on), with the figures behind it and whether the subject is also
cropped (``localised``).

    python scripts/foreground_rule.py [--data ../shared/data] [--out runs/foreground_rule.json]

Videos missing under ``--data`` are skipped. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
VIDEOS = (
    "dlc-openfield/videos/m3v1mp4.mp4", "worm-celegans/test.avi", "worm-celegans/cropped_video.avi",
    "faces-fomm/00.mp4", "face-tpsmm/driving.mp4", "lp-mirror-mouse/videos/test_vid.mp4", "sleap-dance/dance.mp4",
    "sleap-fly-centered/single_fly.mp4", "sleap-fly-centered/centered_pair_small.mp4", "bird-cockatoo/cockatoo.mp4",
    "sam2-clips/01_dog.mp4", "sam2-clips/05_default_juggle.mp4", "sam2-clips/blackswan.mp4",
    "fire-smoke/test1.mp4", "fire-smoke/test2.mp4",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    from fomm_kp.config import LocalizeConfig
    from fomm_kp.files import atomic_write
    from fomm_kp.localize import decide

    sample = REPO / "fomm_kp" / "samples" / "worm.mp4"
    paths = [("samples/worm.mp4 (the demo's clip)", sample)] + [(name, args.data / name) for name in VIDEOS]
    rows = []
    print("| video | subject found | its share of the change | foreground prior | localised (cropped) |")
    print("|---|---|---|---|---|")
    for name, path in paths:
        if not path.is_file():
            print(f"skipped {name}: not found", file=sys.stderr)
            continue
        d = decide(path, LocalizeConfig())
        rows.append({"video": name, "found_fraction": d.found_fraction, "dominance": d.dominance,
                     "distinct": d.distinct, "localised": d.use, "reason": d.reason})
        print(f"| {name} | {d.found_fraction:.0%} | {d.dominance:.0%} | {'on' if d.distinct else 'off'} | "
              f"{'yes' if d.use else 'no'} |")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out, lambda tmp: tmp.write_text(json.dumps(rows, indent=2)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
