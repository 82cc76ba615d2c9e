"""What native code writes to stderr (grpc core's own lines) becomes a JSON log line like ours."""

from __future__ import annotations

import json
import os
import threading

import pytest

from gateway.logs import JsonFormatter, _pump, native_line_as_json
from gateway.redaction import RedactingFilter


def as_json(line: str) -> dict[str, object]:
    parsed = json.loads(native_line_as_json(line, JsonFormatter(), RedactingFilter()))
    assert isinstance(parsed, dict)
    return parsed


def test_a_grpc_core_line_is_a_record_of_logger_grpc_core_at_the_level_of_its_letter() -> None:
    for letter, level in (("E", "error"), ("W", "warning"), ("I", "info"), ("D", "debug"), ("F", "critical")):
        record = as_json(f"{letter}1202 11:41:42.457651   19068 chttp2_transport.cc:1203] the peer went away")
        assert (record["logger"], record["level"]) == ("grpc.core", level)
        assert record["msg"] == "the peer went away"
        assert record["source"] == "chttp2_transport.cc:1203"


def test_a_json_line_passes_through_unchanged() -> None:
    line = '{"ts": "2026-12-02T11:41:42.457Z", "level": "info", "logger": "gateway.access", "msg": "rpc"}'
    assert native_line_as_json(line, JsonFormatter(), RedactingFilter()) == line


def test_any_other_line_is_an_error_record_of_logger_stderr() -> None:
    record = as_json("Traceback (most recent call last):")
    assert (record["logger"], record["level"], record["msg"]) == (
        "stderr",
        "error",
        "Traceback (most recent call last):",
    )
    assert as_json("{not json")["logger"] == "stderr"


def test_a_credential_in_a_native_line_is_masked() -> None:
    record = as_json("I1202 11:41:42.457651 19068 http.cc:1] authorization: Bearer caller-key-4b1d9e")
    assert "caller-key-4b1d9e" not in json.dumps(record)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the pump is a forked child")
def test_the_pump_keeps_taking_lines_while_nobody_reads_the_real_stderr() -> None:
    """Were the pump to block on the real stderr, fd 2 would fill and block its writers (grpc
    core's threads, a traceback): here 1 MB goes into the pump while its output is not read."""
    source_read, source_write = os.pipe()
    target_read, target_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the pump, as route_native_stderr starts it
        try:
            os.close(source_write)
            os.close(target_read)
            _pump(source_read, target_write)
        finally:
            os._exit(1)
    os.close(source_read)
    os.close(target_write)
    lines = [
        f"E1202 11:41:42.457651 19068 chttp2_transport.cc:1203] line {n:05d} {'x' * 80}\n"
        for n in range(10_000)
    ]

    def write_all() -> None:
        with open(source_write, "w", encoding="utf-8") as native:
            native.writelines(lines)

    writer = threading.Thread(target=write_all, daemon=True)
    writer.start()
    writer.join(30)
    taken = not writer.is_alive()
    with open(target_read, encoding="utf-8") as out:  # now read: what waited comes out
        written = [json.loads(line) for line in out]
    os.waitpid(pid, 0)

    assert taken, "the pump stopped taking lines when its reader stopped reading"
    assert [record["msg"].split()[1] for record in written] == [f"{n:05d}" for n in range(10_000)]
    assert {(record["logger"], record["level"]) for record in written} == {("grpc.core", "error")}
