"""Where the jobs of a sweep run: in the driver process, in a pool of local processes, or on a Dask
cluster. In every case the results flow back to the driver, which alone writes the results store
(``on_result`` is called in the driver, one finished job at a time).
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import traceback

from .config import job_hash
from .jobs import run_job

__all__ = ["run_jobs", "connect", "default_workers", "THREAD_ENV"]

# the thread pools of BLAS and Numba: one local process per core wants one thread per process
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
CONNECT_TIMEOUT_S = 3


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


def run_jobs(configs, out_dir, *, device="cpu", backend=None, data_dir=None, workers=1, client=None,
             force=False, progress=True, on_result, on_error) -> None:
    """Run every job of ``configs``; call ``on_result(result)`` in this process as each finishes,
    ``on_error(config, description)`` for one that raised (the other jobs go on).

    backend: the backend every job runs on (``jobs.run_job``; None: the device's default).
    workers: 1 runs the jobs here, one after the other (with progress bars); N > 1 runs them in
    N spawned processes. client: a ``distributed.Client``; when given, jobs go to its cluster
    (``workers`` is ignored). ``out_dir`` must be visible to the workers under the same path.
    """
    out_dir = os.path.abspath(out_dir)
    data_dir = None if data_dir is None else os.path.abspath(data_dir)
    args = dict(out_dir=out_dir, device=device, backend=backend, data_dir=data_dir, force=force)
    if client is not None:
        _run_dask(client, configs, args, on_result, on_error)
    elif workers <= 1:
        for cfg in configs:
            try:
                result = run_job(cfg, progress=progress, **args)
            except Exception as err:  # noqa: BLE001  (one failed job must not stop the sweep)
                on_error(cfg, _describe(err))
            else:
                on_result(result)
    else:
        _run_processes(workers, configs, args, on_result, on_error)


def _run_processes(workers, configs, args, on_result, on_error):
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    for k in THREAD_ENV:                      # inherited by the spawned workers
        os.environ.setdefault(k, threads)
    ctx = multiprocessing.get_context("spawn")
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(run_job, cfg, progress=False, **args): cfg for cfg in configs}
            try:
                for fut in concurrent.futures.as_completed(futures):
                    err = fut.exception()
                    if err is not None:
                        on_error(futures[fut], _describe(err))
                    else:
                        on_result(fut.result())
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_dask(client, configs, args, on_result, on_error):
    from distributed import as_completed

    futures = {}
    for cfg in configs:
        fut = client.submit(run_job, cfg, progress=False, pure=False, key=f"lrpnet-job-{job_hash(cfg)}", **args)
        futures[fut.key] = (fut, cfg)
    try:
        for fut in as_completed([f for f, _ in futures.values()], loop=client.loop):
            cfg = futures[fut.key][1]
            if fut.status == "error":
                on_error(cfg, _describe(fut.exception()))
            else:
                on_result(fut.result())
            fut.release()
    except BaseException:
        client.cancel([f for f, _ in futures.values()])
        raise
