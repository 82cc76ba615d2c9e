"""The garbage collector tuned for a server: many short-lived objects per call, a heap that stays.

CPython starts a young collection every 700 new container objects, and a Send makes hundreds
(coroutines, futures, dicts, spans), so collections run about once a Send; every so often a full
one scans the whole heap, most of which is what start-up made: modules, classes, descriptors,
the config, the server. Under load that was ~60-120 µs of CPU per Send (issue 15), charged by
profiles to whatever code happened to allocate. Two standard settings, after start-up:
``gc.freeze()`` moves everything start-up made out of every future collection (it is never
garbage), and a larger young threshold makes collections rarer. Memory stays bounded: cyclic
garbage still goes at the latest after YOUNG_THRESHOLD more allocations, and most garbage (no
cycles) is freed at once by reference counting, as before.
"""

from __future__ import annotations

import gc

#: New container objects between young collections (CPython's default: 700).
YOUNG_THRESHOLD = 10_000


def tune_for_serving() -> None:
    """Call once start-up is done, before serving; a no-op on collectors without ``freeze``."""
    gc.collect()
    if hasattr(gc, "freeze"):
        gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
