"""Structured logging: one JSON object per line, every line passed through the redaction filter.

Python's log records are formatted here. What native code writes to file descriptor 2 (grpc
core's own lines, a traceback Python prints itself) is routed too, by ``route_native_stderr``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import time
from typing import Any, NoReturn, TextIO

from gateway.log_writer import BackgroundStreamHandler
from gateway.redaction import RedactingFilter

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, then every field passed with ``extra``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The timestamp up to its seconds, kept while records come within the same second: strftime
        # is a good part of a line's cost. One tuple, so a thread reads both halves of one state.
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached, stamp = self._second
        if cached != second:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            self._second = (second, stamp)
        entry: dict[str, Any] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_text:
            entry["exc"] = record.exc_text
        return _ENCODER.encode(entry)


#: ``json.dumps`` with these options would build an encoder for every line.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


#: Libraries whose own log lines can carry what callers or vendors sent: grpc logs a metadata value
#: it cannot decode (an API key included) at error level, aiohttp logs requests and answers.
LIBRARY_LOGGERS = (
    "grpc",
    "grpc._cython.cygrpc",
    "grpc.aio",
    "grpc._server",
    "grpc._common",
    "aiohttp",
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.server",
    "aiohttp.web",
    "asyncio",
)


def configure_logging(level: str = "INFO") -> None:
    """Every log line, ours or a library's, leaves as JSON through the redacting filter."""
    # Written by a thread of its own: a log reader that falls behind must not block the event loop.
    handler = BackgroundStreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # A handler of a library's own would write its lines past the filter: they all go through root.
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers[:] = [h for h in library.handlers if isinstance(h, logging.NullHandler)]
        library.propagate = True
    logging.captureWarnings(True)  # warnings quote arguments too: through the same handler
    # What a record would collect for fields the JSON line never writes (the caller's file and
    # line, found by walking the stack; thread and process names): the logging HOWTO's
    # "Optimization" switches, a few µs a line. Our handler, installed above, is the only one.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


#: grpc core's (absl's) line: severity letter, MMDD, time, thread id, file:line, "]", the message.
_GRPC_CORE_LINE = re.compile(r"([FEWID])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ ([^\]\s]+)\] ?(.*)")
_GRPC_CORE_LEVELS = {
    "F": logging.CRITICAL,
    "E": logging.ERROR,
    "W": logging.WARNING,
    "I": logging.INFO,
    "D": logging.DEBUG,
}


def route_native_stderr() -> None:
    """Turns every line written to fd 2 into a JSON log line; Python's records skip that detour.

    grpc core writes plain text straight to fd 2, below Python, which would break the JSON stream.
    fd 2 becomes a pipe read by a small child process (forked now, before grpc starts a thread),
    which passes JSON lines through and wraps any other line as a record: grpc core's as logger
    ``grpc.core`` at the level of its severity letter, others as logger ``stderr`` at error. A
    child, not a thread: it drains the pipe after this process exits, even after an abort, so
    grpc's last words are not lost; it ignores SIGINT and SIGTERM and ends at the pipe's end.
    Python's log handlers are moved to the original stderr. grpc core's own GRPC_VERBOSITY (default
    ERROR) decides which of its lines are written, not --log-level. Call once, after the config
    loaded (its secrets are masked in the child too) and before serving. No-op where fork is missing.
    """
    if not hasattr(os, "fork"):
        return
    original = os.dup(2)
    read_end, write_end = os.pipe()
    sys.stderr.flush()
    if os.fork() == 0:  # the child: owns the read end only
        os.close(write_end)
        _pump(read_end, original)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    stream = open(original, "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stderr, sys.__stderr__):
            handler.setStream(stream)


def native_line_as_json(line: str, formatter: logging.Formatter, redactor: logging.Filter) -> str:
    """A JSON object line as it is; any other line as a JSON log record, redacted like all records."""
    if line.startswith("{"):
        try:
            if isinstance(json.loads(line), dict):
                return line
        except ValueError:
            pass
    match = _GRPC_CORE_LINE.match(line)
    if match is not None:
        letter, source, message = match.groups()
        record = logging.LogRecord("grpc.core", _GRPC_CORE_LEVELS[letter], source, 0, message, None, None)
        record.source = source
    else:
        record = logging.LogRecord("stderr", logging.ERROR, "", 0, line, None, None)
    redactor.filter(record)
    return formatter.format(record)


def _pump(source: int, target: int) -> NoReturn:
    """The child's loop: read lines from the pipe until every writer is gone, write JSON lines."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # a Ctrl-C or a stop is the parent's to handle
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(target, 2)
    formatter, redactor = JsonFormatter(), RedactingFilter()
    out: TextIO = open(target, "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    # Written by a thread, as the gateway's own lines are: were this loop to block on a reader that
    # stopped reading, fd 2 would fill and block whoever writes to it (grpc core's threads, a
    # traceback). Lines past the writer's bound are dropped and told, as there.
    writer = BackgroundStreamHandler(out)
    writer.setFormatter(formatter)
    try:
        with open(source, "rb") as lines:
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    writer.put_line(native_line_as_json(line, formatter, redactor) + "\n")
        writer.close()  # what waits goes out, within the writer's flush timeout
    finally:
        os._exit(0)  # never the parent's atexit handlers; an error here has nowhere to be told
