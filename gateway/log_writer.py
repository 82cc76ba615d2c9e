"""Log lines leave through a writer thread, so a log reader that stops reading never stops a call.

``logging.StreamHandler`` writes in the thread that logs. The gateway's stderr is usually a pipe
(a container runtime's log driver, a supervisor, ``| tee``): when its reader falls behind, the
pipe fills, the next write blocks, and the event loop with it, so every call waits on the log
(seen: with stderr unread, the 138th Send hung). Here a line is formatted and redacted where it
is logged, as before, then queued; a daemon thread writes what is queued, many lines per write.

Memory stays bounded: at most ``limit`` characters wait. Past that a line is dropped and counted;
once the stream takes lines again, the writer adds one line saying how many were dropped, and
``notify.log.dropped_lines`` (gateway/telemetry.py) counts them for the SRE's dashboards.
``flush`` (and so ``logging.shutdown`` at exit) waits for the queue to drain, but never longer
than ``flush_timeout``: a stuck reader cannot hold up the exit either.

The standard library's ``QueueHandler``/``QueueListener`` pair was not used: its queue has no
bound in bytes, and with a bounded ``queue.Queue`` it blocks or raises per record, where a count
of the lines dropped is what an operator needs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from queue import Empty, SimpleQueue
from typing import TextIO

DEFAULT_LIMIT = 8 * 1024 * 1024  # characters waiting to be written; ~20,000 access log lines
BATCH = 64 * 1024  # characters per write at most: one syscall for many lines under load
# After a write the writer waits this long before taking more lines: under load one wake-up (and one
# write) per 20 ms instead of one per line, each of which costs a thread switch and a GIL handoff.
# A line waits at most that long; an idle gateway's writer sleeps on the empty queue, waking no one.
LINGER_SECONDS = 0.02
_STOP = "\x00stop"  # the writer's sentinel; a formatted line always ends with the terminator

_handlers: weakref.WeakSet[BackgroundStreamHandler] = weakref.WeakSet()


def dropped_lines() -> int:
    """Lines dropped so far by every writer of this process (a counter for the metrics)."""
    return sum(handler.dropped for handler in list(_handlers))


class BackgroundStreamHandler(logging.StreamHandler[TextIO]):
    """A ``StreamHandler`` whose writes happen in a thread of its own (the module says why)."""

    def __init__(
        self, stream: TextIO | None = None, *, limit: int = DEFAULT_LIMIT, flush_timeout: float = 5.0
    ) -> None:
        super().__init__(stream)
        self.limit = limit
        self.flush_timeout = flush_timeout
        self._reset()
        _handlers.add(self)

    def _reset(self) -> None:
        # Each counter has one writer: ``_queued`` and ``_refused`` the logging threads (``emit``
        # runs under the handler's lock), ``_written`` and ``_lost`` the writer thread. Reading the
        # other side's value late only over-counts what waits, so the bound holds.
        self._queue: SimpleQueue[str] = SimpleQueue()
        self._queued = 0
        self._refused = 0  # lines not queued: the limit was reached
        self._written = 0
        self._lost = 0  # lines the stream refused (closed, broken)
        self._reported = 0  # dropped lines already told in a line of the stream's own
        self._progress = threading.Condition(threading.Lock())
        self._flushing = 0  # threads waiting in ``flush``: the writer wakes them only if any
        self._thread: threading.Thread | None = None

    @property
    def dropped(self) -> int:
        return self._refused + self._lost

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self.put_line(line)

    def put_line(self, line: str) -> None:
        """Queues a line already formatted, terminator included, or counts it dropped. One caller
        at a time: ``emit`` runs under the handler's lock, the native-stderr pump is alone."""
        if self._queued - self._written + len(line) > self.limit:
            self._refused += 1
            return
        if self._thread is None:
            self._start()
        self._queued += len(line)
        self._queue.put(line)

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._write_queued, args=(self._queue,), name="log-writer", daemon=True
        )
        self._thread.start()

    def _write_queued(self, queue: SimpleQueue[str]) -> None:
        while True:
            first = queue.get()
            if first is _STOP:
                return
            batch, size, stopping = [first], len(first), False
            while size < BATCH:
                try:
                    line = queue.get_nowait()
                except Empty:
                    break
                if line is _STOP:
                    stopping = True
                    break
                batch.append(line)
                size += len(line)
            try:
                self._write("".join(batch))
            except Exception:  # a closed or broken stream: the lines are lost, and counted as such
                self._lost += len(batch)
            else:
                self._tell_dropped()
            self._written += size
            if self._flushing:  # read after the count: a flush that began since sees the count
                with self._progress:
                    self._progress.notify_all()
            if stopping:
                return
            time.sleep(LINGER_SECONDS)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _tell_dropped(self) -> None:
        """Once the stream took lines again: how many were dropped since last told (one line)."""
        dropped = self.dropped
        if dropped > self._reported:
            with contextlib.suppress(Exception):  # else told after the next batch the stream takes
                self._write(self._dropped_line(dropped - self._reported))
                self._reported = dropped

    def _dropped_line(self, count: int) -> str:
        record = logging.LogRecord(
            "gateway.logs",
            logging.WARNING,
            __file__,
            0,
            "%d log lines dropped: the log stream did not take them as fast as they came",
            (count,),
            None,
        )
        try:
            return self.format(record) + self.terminator
        except Exception:
            return f"{count} log lines dropped{self.terminator}"

    def flush(self) -> None:
        """Waits until the lines queued so far are written, or ``flush_timeout`` has passed."""
        self._drain()

    def _drain(self) -> bool:
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        target = self._queued
        with self._progress:
            self._flushing += 1
            try:
                return self._progress.wait_for(lambda: self._written >= target, timeout=self.flush_timeout)
            finally:
                self._flushing -= 1

    def close(self) -> None:
        try:
            drained = self._drain()
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
                thread.join(timeout=1.0 if drained else 0.0)  # a writer stuck in write() stays so
                self._thread = None
        finally:
            super().close()


def _after_fork_in_child() -> None:
    # The writer thread does not survive a fork; the lines queued before it are the parent's to write.
    for handler in list(_handlers):
        handler._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
