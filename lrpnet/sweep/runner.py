"""Where the jobs of a sweep run: in the driver process, in a pool of local processes, or on a Dask
cluster. All three are one ``concurrent.futures`` executor, fed by one loop (``run_jobs``):

- a job is submitted only when a worker is free and its claim is won (``claim``; the results store
  keeps the claims, so that several sweeps on one output folder split the work), so no job waits in a
  queue that the driver no longer watches;
- the results flow back to the driver, which alone calls ``on_result`` (it writes the store);
- when the driver stops (an error, Ctrl-C), the jobs in flight are ended and no new job starts; when
  it dies (SIGKILL included), its local workers die with it (``_end_with_driver``).
"""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback

from ..threads import limit_threads
from .jobs import run_job
from .store import DONE, RUN, WAIT

__all__ = ["run_jobs", "connect", "default_workers", "CONNECT_TIMEOUT_S", "POLL_S"]

CONNECT_TIMEOUT_S = 3
POLL_S = 10.0           # how often a job that another sweep runs is looked at again
PR_SET_PDEATHSIG = 1    # linux/prctl.h: the signal this process gets when its parent ends


def default_workers(device: str, n_jobs: int) -> int:
    """In-process (1) on the GPU; one process per core on the CPU, at most one per job."""
    if device == "gpu":
        return 1
    return max(1, min(os.cpu_count() or 1, n_jobs))


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S):
    """A ``distributed.Client`` of the scheduler at ``address`` (tcp://HOST:PORT); raises OSError
    (or TimeoutError) within about ``timeout_s`` when nobody answers there."""
    from distributed import Client
    return Client(address, timeout=f"{timeout_s}s", set_as_default=False)


def _describe(err: BaseException) -> str:
    """The error and, for one raised in another process, its remote traceback."""
    text = "".join(traceback.format_exception(err))
    return text.rstrip()


# -- the executors -----------------------------------------------------------------------------------

class _InThisProcess(concurrent.futures.Executor):
    """Runs each job in the driver as it is submitted (``--workers 1``: progress bars, no processes).
    A KeyboardInterrupt is not caught: it stops the sweep."""

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # noqa: BLE001  (the job's error is its future's)
            future.set_exception(err)
        return future


def _end_with_driver(driver_pid: int) -> None:
    """Make this worker end when the driver ends, however it ends. On Linux the kernel sends SIGKILL
    when the parent dies (prctl PR_SET_PDEATHSIG; the driver's main thread starts the workers, and
    that signal follows the thread); elsewhere a thread watches the parent once a second."""
    if sys.platform.startswith("linux"):
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        threading.Thread(target=_watch_parent, args=(driver_pid,), daemon=True).start()
    if os.getppid() != driver_pid:            # the driver died before the line above took effect
        os._exit(1)


def _watch_parent(driver_pid: int) -> None:
    while os.getppid() == driver_pid:
        time.sleep(1.0)
    os._exit(1)


def _start_worker(driver_pid: int, threads: int) -> None:
    """The initializer of every local worker process."""
    _end_with_driver(driver_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C reaches the whole process group: the driver
    limit_threads(threads)                         # answers it, by ending the workers


def _stop_now(pool) -> None:
    """No new job starts, and the jobs in flight end now (their results would be thrown away)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())   # a ProcessPoolExecutor's
    for process in processes:
        process.terminate()
    pool.shutdown(wait=False)              # a Dask executor cancels its futures
    for process in processes:
        process.join(timeout=5)


@contextlib.contextmanager
def _executor(workers: int, client):
    """(executor, slots): where the jobs run and how many run at once."""
    if client is not None:
        pool, slots = client.get_executor(pure=False), max(1, sum(client.nthreads().values()))
    elif workers <= 1:
        pool, slots = _InThisProcess(), 1
    else:
        # one BLAS thread per process when there are as many processes as cores
        threads = max(1, (os.cpu_count() or 1) // workers)
        pool, slots = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(os.getpid(), threads)), workers
    try:
        yield pool, slots
    except BaseException:
        _stop_now(pool)
        raise
    pool.shutdown(wait=True)


# -- the loop ------------------------------------------------------------------------------------------

def _always_run(config) -> str:
    return RUN


def run_jobs(configs, out_dir, *, device="cpu", backend=None, data_dir=None, workers=1, client=None,
             force=False, progress=True, claim=_always_run, poll_s=POLL_S, on_result, on_error) -> None:
    """Run every job of ``configs``; call ``on_result(result)`` in this process as each finishes,
    ``on_error(config, description)`` for one that raised (the other jobs go on).

    backend: the backend every job runs on (``jobs.run_job``; None: the device's default).
    workers: 1 runs the jobs here, one after the other (with progress bars); N > 1 runs them in
    N spawned processes. client: a ``distributed.Client``; when given, jobs go to its cluster
    (``workers`` is ignored). ``out_dir`` must be visible to the workers under the same path.
    claim:   called in this process just before a job would start: ``store.RUN`` (this sweep runs
    it), ``store.WAIT`` (another sweep runs it: asked again every ``poll_s`` seconds, until that sweep
    finishes it or its claim goes stale) or ``store.DONE`` (finished elsewhere: dropped).
    """
    out_dir = os.path.abspath(out_dir)
    data_dir = None if data_dir is None else os.path.abspath(data_dir)
    args = dict(out_dir=out_dir, device=device, backend=backend, data_dir=data_dir, force=force,
                progress=progress and client is None and workers <= 1)
    pending = collections.deque((0.0, cfg) for cfg in configs)    # (when to ask for its claim, config)
    running = {}
    with _executor(workers, client) as (pool, slots):
        while pending or running:
            while pending and len(running) < slots and pending[0][0] <= time.monotonic():
                _, cfg = pending.popleft()
                answer = claim(cfg)
                if answer == RUN:
                    running[pool.submit(run_job, cfg, **args)] = cfg
                elif answer == WAIT:
                    pending.append((time.monotonic() + poll_s, cfg))
                elif answer != DONE:
                    raise ValueError(f"claim answered {answer!r}; expected {RUN!r}, {WAIT!r} or {DONE!r}")
            # wake for a finished job, or when the next waiting job is due and a worker is free
            due = max(0.0, pending[0][0] - time.monotonic()) if pending and len(running) < slots else None
            if not running:
                time.sleep(due or 0.0)
                continue
            finished, _ = concurrent.futures.wait(running, timeout=due,
                                                  return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                cfg = running.pop(future)
                if future.exception() is not None:
                    on_error(cfg, _describe(future.exception()))
                else:
                    on_result(future.result())
