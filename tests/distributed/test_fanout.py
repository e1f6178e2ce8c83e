"""run_many in this process: skipping finished sources, failures that do not stop the others,
leftovers of killed writers removed, the summary; and tracking many videos the same way twice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from fomm_kp.distributed import Outcome, RunOptions, TrackJob, run_many, run_one
from fomm_kp.errors import FommError
from fomm_kp.files import atomic_write
from fomm_kp.progress import Update

from conftest import disc_frames, write_video

SERIAL = RunOptions(workers=1)


@dataclass(frozen=True)
class CountLines:
    """Writes the number of lines of a text source; fails like a bad input on an empty one."""

    out_dir: Path
    stage: str = "counting"

    def outputs(self, source: Path) -> tuple[Path, ...]:
        return (self.out_dir / f"{source.stem}.txt",)

    def run(self, source: Path) -> int:
        lines = source.read_text().splitlines()
        if not lines:
            raise FommError(f"{source} is empty")
        atomic_write(self.outputs(source)[0], lambda tmp: tmp.write_text(str(len(lines))))
        return len(lines)


def sources(folder: Path, counts: list[int]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, count in enumerate(counts):
        path = folder / f"s{i}.log"
        path.write_text("line\n" * count)
        paths.append(path)
    return paths


def test_a_failing_source_is_reported_and_the_others_finish(tmp_path: Path) -> None:
    given = sources(tmp_path / "in", [3, 0, 5])
    updates: list[Update] = []
    summary = run_many(given, CountLines(tmp_path / "out"), SERIAL, progress=updates.append)
    assert [o.status for o in summary.outcomes] == ["done", "failed", "done"]
    assert summary.outcomes[1].error == f"{given[1]} is empty"
    assert summary.counts == {"done": 2, "skipped": 0, "failed": 1}
    assert summary.frames == 8 and summary.frames_per_second > 0
    assert (tmp_path / "out" / "s2.txt").read_text() == "5"
    assert not (tmp_path / "out" / "s1.txt").exists()
    assert [u.done for u in updates] == [0, 1, 2, 3] and {u.total for u in updates} == {3}


def test_finished_sources_are_skipped_unless_overwrite(tmp_path: Path) -> None:
    given = sources(tmp_path / "in", [1, 2])
    job = CountLines(tmp_path / "out")
    run_many(given, job, SERIAL)
    given[0].write_text("a\nb\nc\nd\n")
    again = run_many(given, job, SERIAL)
    assert again.counts["skipped"] == 2 and (tmp_path / "out" / "s0.txt").read_text() == "1"
    redone = run_many(given, job, RunOptions(workers=1, overwrite=True))
    assert redone.counts["done"] == 2 and (tmp_path / "out" / "s0.txt").read_text() == "4"


def test_leftovers_of_a_killed_writer_are_removed_before_a_rerun(tmp_path: Path) -> None:
    [source] = sources(tmp_path / "in", [2])
    job = CountLines(tmp_path / "out")
    leftover = tmp_path / "out" / ".s0.txt.k1ll3d_1.txt"  # what atomic_write leaves when SIGKILLed
    leftover.parent.mkdir()
    leftover.write_text("hal")
    outcome = run_one(job, source, threads=1)
    assert outcome == Outcome(source, "done", 2, outcome.seconds)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s0.txt"]


def test_ray_address_without_ray_or_unexpected_errors_are_one_line(tmp_path: Path, monkeypatch) -> None:
    import fomm_kp.distributed.fanout as fanout

    monkeypatch.setattr(fanout, "available", lambda module: False)
    with pytest.raises(FommError, match=r'pip install "fomm_kp\[ray\]"'):
        run_many(sources(tmp_path / "in", [1, 1]), CountLines(tmp_path / "out"), RunOptions(address="auto"))
    # Without Ray, several workers fall back to one source after another.
    summary = run_many(sources(tmp_path / "in", [1, 1]), CountLines(tmp_path / "out2"), RunOptions(workers=4))
    assert summary.engine == "in this process" and summary.counts["done"] == 2
    binary = tmp_path / "in" / "bad.log"
    binary.write_bytes(b"\xff\xfe\x00")
    failed = run_one(CountLines(tmp_path / "out"), binary, threads=1)
    assert failed.status == "failed" and failed.error.startswith("UnicodeDecodeError: ") and "\n" not in failed.error


def test_tracking_many_videos_gives_the_same_bytes_as_tracking_each(tmp_path: Path, trained_checkpoint: Path) -> None:
    from fomm_kp import track

    videos = [write_video(tmp_path / f"v{i}.mp4", disc_frames(12 + 4 * i, seed=i)[0]) for i in range(2)]
    summary = run_many(videos, TrackJob(trained_checkpoint, tmp_path / "tracks"), SERIAL)
    assert summary.counts["done"] == 2 and summary.frames == 12 + 16
    for video in videos:
        track(video, trained_checkpoint, out=tmp_path / "one" / f"{video.stem}.npz")
        assert (tmp_path / "tracks" / f"{video.stem}.npz").read_bytes() == (tmp_path / "one" / f"{video.stem}.npz").read_bytes()
