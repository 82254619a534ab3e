"""Where a comparison's rows run: one after another in this process, or side
by side in "lanes", one worker process per free core, each row's fits one
after another in its lane.

A row's search spreads its CV fits over the cores, but its refit, a row of
one fit (the fine-tuning row), its predictions and its shift profile run on
one core while the others wait: on digits on 2 cores they left a core idle
for about half of the run. Rows in lanes keep every core busy; a row trains
with one thread either way (``num_threads=1``), so each row's fits, and the
table, are the same in a lane and in this process.

The jobs carry our own in-memory objects to our own worker processes
(pickled by the process pool, as joblib carries a search's fits); nothing
is read from a file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

__all__ = ["Job", "Lanes", "run_job"]

# One thread per lane for every library a row may use.
_ONE_THREAD = {
    k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
}


@dataclass(frozen=True)
class Job:
    """One row to fit and profile: what :func:`run_job` needs, and nothing
    that cannot travel to a worker process (the row's declaration keeps only
    its name and family: its builders may be closures)."""

    built: object
    row_plan: object
    data: tuple
    sets: object
    rob_data: tuple | None
    random_state: int
    n_jobs: object
    tag: str

    def portable(self):
        spec = self.built.spec
        light = replace(
            spec, build=self.built.estimator, needs=None, grid=None, quick_grid=None
        )
        return replace(self, built=replace(self.built, spec=light))


@dataclass(frozen=True)
class Done:
    """What a job gives back: the :class:`~skcnn.compare.fit.Fitted` row,
    its part of the shift profile (or None) and the seconds it took."""

    fitted: object
    profile: object
    seconds: float


def run_job(job, progress=None, clock=None, threads=None):
    """Fit, score and profile one row (in this process or in a lane)."""
    from .fit import fit_row
    from .profile import Profiles

    t0 = time.perf_counter()
    fitted = fit_row(
        job.built,
        job.row_plan,
        job.data,
        job.sets,
        random_state=job.random_state,
        n_jobs=job.n_jobs,
        progress=progress or (lambda msg: None),
        clock=clock or "in a lane",
        tag=job.tag,
        threads=threads,
    )
    profile = None
    if job.rob_data is not None:
        profile = Profiles(job.rob_data, job.random_state)
        profile.add(fitted.row.model, fitted.model)
    return Done(fitted, profile, time.perf_counter() - t0)


def _run_in_lane(job):
    import torch

    torch.set_num_threads(1)  # "auto" threads in a lane: its one core
    return run_job(job, threads=1)


def _start_lane(parent):
    """A lane's start: malloc keeps freed memory (:func:`keep_freed_memory`),
    the rows' code (and torch) imported before the first row, and a watch
    ends the lane when the run's process is gone (killed: a row in a lane
    would otherwise train on to its end, for nothing)."""
    import os
    import threading

    from joblib.externals.loky import process_executor

    from .._device import keep_freed_memory
    from . import fit  # noqa: F401 - imports torch; each job sets its threads

    keep_freed_memory()
    # A lane's memory grows with the rows it runs (torch's and malloc's
    # caches, kept on purpose), which loky's leak check (300 MB over the
    # size after the first job) took for a leak: it restarted the lane
    # between two rows, with a warning and 3 s of importing torch again.
    process_executor._MAX_MEMORY_LEAK_SIZE = float("inf")

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class Lanes:
    """Rows side by side in ``n`` worker processes (n >= 2), or (n == 1)
    one at a time in this process, behind one interface: :meth:`start` a
    job when :attr:`free`, :meth:`next_done` for the next finished one."""

    def __init__(self, n, progress, clock):
        self.n, self.progress, self.clock = n, progress, clock
        self.running = {}  # name -> (future or Done, started at, estimate)
        self._executor = self._warming = None

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        self.close(kill=kind is not None)

    def warm(self):
        """Start the lanes' processes now: each imports torch and the row
        fitting code (3 s of CPU) while this process still loads the data.
        This process keeps freed memory as the lanes do
        (:func:`~skcnn._device.keep_freed_memory`): with one lane it runs
        the rows itself (a busy machine), and its Lite0 shift profile took
        1.4x its estimate without, which slowed the plan of the LP-FT row."""
        from .._device import keep_freed_memory

        keep_freed_memory()
        if self.n > 1:
            self._warming = self._pool().submit(int)
        return self

    def keep(self, n_rows):
        """One lane (this process) when fewer than two rows are left; else
        the lanes once started (a calibration then measures a quiet
        machine)."""
        if n_rows < 2 and self.n > 1:
            self.close(kill=True)
            self.n = 1
        elif self._warming is not None:
            self._warming.result()
        self._warming = None

    @property
    def free(self):
        return len(self.running) < self.n

    def busy_seconds(self):
        """The estimated seconds the running rows still need."""
        now = time.perf_counter()
        return sum(max(est - (now - t0), 0.0) for _, t0, est in self.running.values())

    def start(self, name, job, estimate=0.0):
        if self.n == 1:  # this process: the row's searches report each fit
            done = run_job(job, self.progress, self.clock)
            self.running[name] = (done, time.perf_counter(), 0.0)
            return
        future = self._pool().submit(_run_in_lane, job.portable())
        self.running[name] = (future, time.perf_counter(), estimate)

    def _pool(self):
        if self._executor is None:
            # the run's own pool (joblib's reusable one is the searches')
            import os

            from joblib.externals.loky import ProcessPoolExecutor

            self._executor = ProcessPoolExecutor(
                max_workers=self.n,
                env=_ONE_THREAD,
                initializer=_start_lane,
                initargs=(os.getpid(),),
            )
        return self._executor

    def next_done(self):
        """(name, Done) of the first running row to finish."""
        for name, (work, _, _) in self.running.items():
            if isinstance(work, Done):
                del self.running[name]
                return name, work
        from concurrent.futures import FIRST_COMPLETED, wait

        futures = {work: name for name, (work, _, _) in self.running.items()}
        finished, _ = wait(futures, return_when=FIRST_COMPLETED)
        future = next(f for f in futures if f in finished)  # in start order
        name = futures[future]
        del self.running[name]
        return name, future.result()

    def close(self, kill=False, wait=True):
        """Stop the lanes' processes (``kill``: a stopped run's, now;
        ``wait=False``: they end while this process goes on)."""
        self.running.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=wait and not kill, kill_workers=kill)
            self._executor = None


def lane_count(n_jobs, dask, n_rows):
    """How many lanes a run's rows get: with ``n_jobs="auto"``, a lane per
    free core (at most one per row); one (this process) with an int
    ``n_jobs`` (a row's search jobs, as before), a Dask cluster, one free
    core or one row."""
    from .fit import row_jobs

    if dask or n_jobs != "auto" or n_rows < 2:
        return 1
    return max(1, min(int(row_jobs(n_jobs)), n_rows))


def lane_order(plan, budget, built, lanes):
    """The order rows start in. One lane, or lanes under a budget that cuts
    a row: the plan's (cheap rows first, so that a costly row's overrun
    cannot cost a cheap row its turn). Lanes the whole plan fits in: the
    costly rows first (the longest estimate first), so that cheap rows fill
    the lanes at the end; on digits at 150 s the DenseNet row, started last,
    ran alone for its last 30 s. With no budget (no costs measured) the
    costly kinds first: rows that train epochs, then the other transfer rows
    (pretrained features), then the rest, each in table order."""
    names = list(plan.rows)
    if lanes == 1:
        return names
    if budget is not None:
        if any(p.note != "full" or not p.run for p in plan.rows.values()):
            return names
        return sorted(names, key=lambda n: -plan.rows[n].seconds)

    def kind(name):
        b = built[name]
        return 0 if b.network else 1 if b.spec.group == "transfer" else 2

    return sorted(names, key=kind)
