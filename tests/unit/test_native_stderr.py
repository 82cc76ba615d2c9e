"""What native code writes to stderr (grpc core's own lines) becomes a JSON log line like ours."""

from __future__ import annotations

import json

from gateway.logs import JsonFormatter, native_line_as_json
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
