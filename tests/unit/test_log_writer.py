"""gateway.log_writer: lines leave through a thread; a stream that stops taking them blocks nobody,
what waits is bounded, and what was dropped is counted and told."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import TextIO

import pytest

from gateway import log_writer
from gateway.log_writer import BackgroundStreamHandler


@contextlib.contextmanager
def logger_to(handler: logging.Handler) -> Iterator[logging.Logger]:
    logger = logging.getLogger(f"test.log_writer.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        handler.close()


def finishes(work: Callable[[], object], seconds: float = 20.0) -> bool:
    """Runs ``work`` in a thread: whether it returned within ``seconds`` (a hang fails, not hangs)."""
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def unread_pipe() -> tuple[TextIO, int]:
    """A stream whose reader has stopped reading: writes block once the pipe (64 KiB) is full."""
    read_end, write_end = os.pipe()
    return open(write_end, "w", buffering=1, encoding="utf-8"), read_end


def read_all(read_end: int) -> str:
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    return b"".join(chunks).decode()


def test_a_reader_that_stops_reading_blocks_nobody_and_the_dropped_lines_are_told() -> None:
    stream, read_end = unread_pipe()
    handler = BackgroundStreamHandler(stream, limit=32 * 1024)
    handler.setFormatter(logging.Formatter("%(message)s"))
    total = 5000  # ~1 MB of lines, the pipe holds 64 KiB and the handler 32 KiB more
    with logger_to(handler) as logger:
        assert finishes(lambda: [logger.info("line %05d %s", n, "x" * 190) for n in range(total)])
        assert handler.dropped > 0
        reader = threading.Thread(target=lambda: lines.extend(read_all(read_end).splitlines()))
        lines: list[str] = []
        reader.start()
        handler.flush()
    stream.close()  # the reader sees the pipe's end
    reader.join(10)

    # Told once the writer could write again, in as many lines as it had batches to write since.
    told = [re.fullmatch(r"(\d+) log lines dropped: .*", line) for line in lines if "dropped" in line]
    written = [int(line.split()[1]) for line in lines if line.startswith("line ")]
    assert told and all(told)
    assert sum(int(match.group(1)) for match in told if match) == handler.dropped
    assert written == sorted(written) and len(set(written)) == len(written), "in order, each once"
    assert len(written) + handler.dropped == total, "every line is either written or counted"


def test_what_waits_stays_under_the_limit() -> None:
    stream, read_end = unread_pipe()
    os.write(stream.fileno(), b"." * 65536)  # the pipe is full: the writer's first write blocks
    handler = BackgroundStreamHandler(stream, limit=16 * 1024, flush_timeout=0.2)
    with logger_to(handler) as logger:
        assert finishes(lambda: [logger.info("%s", "y" * 999) for _ in range(1000)])
        waiting = handler._queued - handler._written
        assert 15 * 1024 < waiting <= 16 * 1024, "lines wait up to the limit, not beyond"
        assert handler.dropped == 1000 - waiting // 1000
        writer = handler._thread
        os.close(read_end)  # the reader is gone: the blocked write fails, its lines are counted lost
    assert writer is not None
    writer.join(10)  # it ends once it reaches the stop: no writer outlives its test
    assert not writer.is_alive()
    with contextlib.suppress(OSError):
        stream.close()


def test_flush_returns_once_the_queued_lines_are_written() -> None:
    stream = io.StringIO()
    handler = BackgroundStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    with logger_to(handler) as logger:
        for n in range(200):
            logger.info("line %d", n)
        handler.flush()
        assert stream.getvalue().splitlines() == [f"line {n}" for n in range(200)]


def test_a_stuck_reader_does_not_hold_up_the_exit() -> None:
    stream, read_end = unread_pipe()
    handler = BackgroundStreamHandler(stream, flush_timeout=0.3)
    logger = logging.getLogger("test.log_writer.stuck")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    for _ in range(1000):
        logger.info("%s", "z" * 500)  # 500 KB: far more than the pipe holds
    logger.removeHandler(handler)

    writer = handler._thread
    started = time.monotonic()
    assert finishes(handler.close, 10)
    assert time.monotonic() - started < 5, "flush gave up after its timeout, close did not wait on"
    os.close(read_end)  # the blocked write fails; the writer counts what is left lost and stops
    assert writer is not None
    writer.join(10)
    assert not writer.is_alive()
    with contextlib.suppress(OSError):
        stream.close()


def test_a_broken_stream_counts_its_lines_as_dropped() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("the reader is gone")

    handler = BackgroundStreamHandler(Broken())
    with logger_to(handler) as logger:
        before = log_writer.dropped_lines()
        for n in range(10):
            logger.info("line %d", n)
        handler.flush()
        assert handler.dropped >= 10
        # Every writer of the process counts (another test's may still be counting its own).
        assert log_writer.dropped_lines() - before >= handler.dropped


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork only")
def test_a_forked_child_writes_its_own_lines_and_not_the_parents() -> None:
    stream, read_end = unread_pipe()
    handler = BackgroundStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    with logger_to(handler) as logger:
        logger.info("parent before")
        handler.flush()
        pid = os.fork()
        if pid == 0:  # the child: its own writer thread, and nothing the parent had queued
            try:
                logger.info("child")
                handler.flush()
            finally:
                os._exit(0)
        deadline = time.monotonic() + 20
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                pytest.fail("the child did not exit")
            time.sleep(0.01)
        logger.info("parent after")
        handler.flush()
    stream.close()

    assert sorted(read_all(read_end).splitlines()) == ["child", "parent after", "parent before"]
