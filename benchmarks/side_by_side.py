"""What the side-by-side benchmarks share: timing settings of one process against each other
(``best_alternating``) and the lines their tables start and end with (``header``, ``footer``)."""
from __future__ import annotations

import datetime
import os
import sys
import time


def best_alternating(fn, settings, rounds, calls):
    """{name: best seconds of one call of ``fn``} under each of ``settings`` ({name: a function that
    puts the setting in force}). The settings take turns, ``rounds`` times; in a turn ``fn`` runs once
    untimed (so that what the other setting left in the caches and the allocator is not on this one's
    clock), then ``calls`` timed times."""
    best = {name: float("inf") for name in settings}
    for _ in range(rounds):
        for name, put in settings.items():
            put()
            fn()
            for _ in range(calls):
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def header(title, threads, *versions):
    """Print a table's title and the lines that say when, how and with what it ran: date, threads,
    cores, ``versions`` (e.g. "numpy 2.4.6"), the load average at the start, the command."""
    what = ", ".join((f"threads {threads}", f"{os.cpu_count()} CPUs") + versions)
    print(f"# {title}")
    print(f"- {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {what}, "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    print(f"- command: python benchmarks/{os.path.basename(sys.argv[0])} " + " ".join(sys.argv[1:]))
    print()


def footer(*notes):
    """Print the lines a table ends with: ``notes`` (one line each), then the load average at the end."""
    print()
    for line in notes:
        print(f"- {line}")
    print(f"- load average at the end: {os.getloadavg()[0]:.1f}")
