"""Many videos at once: one job per video as Ray tasks (local instance or cluster), or in this process.

    from fomm_kp.distributed import RunOptions, TrackJob, expand_sources, run_many
    videos = expand_sources(["videos/"], VIDEO_SUFFIXES)
    summary = run_many(videos, TrackJob(Path("runs/mouse/checkpoint.pt"), Path("tracks")), RunOptions(workers=4))

:mod:`~fomm_kp.distributed.sources` expands folders, list files and globs; :mod:`~.work` is what runs
for one source (:class:`Job`, :func:`run_one`); :mod:`~.ray_tasks` runs sources as Ray tasks;
:mod:`~.fanout` decides where to run, skips finished sources and sums up (:func:`run_many`);
:mod:`~.jobs` holds the jobs of the many-video commands.
"""

from fomm_kp.distributed.fanout import RunSummary, run_many
from fomm_kp.distributed.jobs import FeaturesJob, LabelJob, TrackJob
from fomm_kp.distributed.sources import expand_sources, is_many, output_paths
from fomm_kp.distributed.work import Job, Outcome, RunOptions, run_one

__all__ = ["run_many", "RunOptions", "RunSummary", "Outcome", "Job", "run_one", "TrackJob", "FeaturesJob", "LabelJob",
           "expand_sources", "is_many", "output_paths"]
