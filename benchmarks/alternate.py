"""Settings of one process timed against each other, taking turns: ``best_alternating``."""
from __future__ import annotations

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
