"""Credentials never reach what the gateway writes: redact() and the logging filter."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import redaction
from gateway.logs import JsonFormatter
from gateway.redaction import MASK, RedactingFilter, redact, register_secrets, register_token


def test_registered_secret_is_masked_wherever_it_appears() -> None:
    secret = "redaction-unit-secret-0c7d"
    register_secrets([secret])
    cleaned = redact(f"calling vendor with {secret}; body={{'token': '{secret}'}}")
    assert secret not in cleaned
    assert cleaned.count(MASK) == 2


def test_short_values_are_not_registered_so_ordinary_words_survive() -> None:
    register_secrets(["ab"])
    assert redact("a table about cabs") == "a table about cabs"


@pytest.mark.parametrize(
    ("url", "credential"),
    [
        (
            "https://oapi.dingtalk.com/robot/send?access_token=tok123abc&timestamp=1&sign=sig%2Fxyz",
            "tok123abc",
        ),
        (
            "https://oapi.dingtalk.com/robot/send?access_token=tok123abc&timestamp=1&sign=sig%2Fxyz",
            "sig%2Fxyz",
        ),
        ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=wk-998877", "wk-998877"),
        ("POST /cgi-bin/webhook/send?KEY=upper-case-key 200", "upper-case-key"),
    ],
)
def test_credential_query_parameters_are_masked(url: str, credential: str) -> None:
    cleaned = redact(url)
    assert credential not in cleaned
    assert MASK in cleaned


def test_non_credential_parameters_are_kept() -> None:
    text = "GET /send?msgtype=text&monkey=1&debug=true"
    assert redact(text) == text


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.unit.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_filter_masks_secrets_passed_as_log_arguments(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    secret = "log-arg-secret-6b1f"
    register_secrets([secret])
    logger.info("vendor call to %s failed for %r", f"https://x/send?access_token={secret}", secret)
    output = stream.getvalue()
    assert secret not in output
    assert "vendor call to https://x/send?access_token=***" in output


def test_filter_masks_secrets_in_exception_text(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    secret = "exception-secret-2d9a"
    register_secrets([secret])
    try:
        raise ValueError(f"vendor rejected key {secret}")
    except ValueError:
        logger.exception("delivery failed")
    output = stream.getvalue()
    assert "delivery failed" in output
    assert "ValueError: vendor rejected key ***" in output
    assert "Traceback" in output
    assert secret not in output


def test_filter_leaves_clean_records_unchanged(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.warning("delivered %d messages to %s", 3, "ops")
    assert stream.getvalue() == "WARNING delivered 3 messages to ops\n"


# -- a caller's API key, which the gateway cannot know in advance ----------------------------------

API_KEY = "caller-key-5f0e9b2a"


@pytest.mark.parametrize(
    "text",
    [
        f"authorization: Bearer {API_KEY}",
        f"Authorization=Basic {API_KEY}",
        f"metadata (('authorization', 'Bearer {API_KEY}'),)",
        f"{{'authorization': '{API_KEY}'}}",
        f'{{"authorization":"{API_KEY}"}}',
        f"Invalid encoding on b'Bearer {API_KEY}\\xff'",
        f"Invalid encoding on b'bearer \\xc3{API_KEY}'",
        f"retrying with bearer {API_KEY}",
    ],
)
def test_whatever_follows_authorization_or_bearer_is_masked(text: str) -> None:
    cleaned = redact(text)
    assert API_KEY not in cleaned
    assert MASK in cleaned


def test_how_to_authenticate_is_still_said_in_full() -> None:
    hint = "missing credentials: send metadata 'authorization: Bearer <api key>'"
    assert redact(hint) == hint
    assert redact("the authorization header is missing") == "the authorization header is missing"


def test_log_lines_mask_every_bytes_repr_as_grpc_logs_an_undecodable_header(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    # Sent without a scheme, nothing in the value says it is a key: the whole bytes value goes.
    logger, stream = captured
    logger.error("Invalid encoding on %s", (API_KEY.encode() + b"\xff"))
    assert stream.getvalue() == "ERROR Invalid encoding on b'***'\n"


class Collector(logging.Handler):
    """Keeps the records it is handed, after its filters ran."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_fields_passed_with_extra_are_masked_too(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, _ = captured
    collector = Collector()
    collector.addFilter(RedactingFilter())
    logger.addHandler(collector)
    try:
        logger.warning("store unavailable", extra={"error": f"authorization: Bearer {API_KEY}"})
    finally:
        logger.removeHandler(collector)
    assert collector.records[0].error == "authorization: ***"  # type: ignore[attr-defined]


def test_json_lines_mask_every_string_field_and_keep_numbers_as_they_are() -> None:
    secret = "json-line-secret-91ac"
    register_secrets([secret])
    record = logging.LogRecord("gateway.access", logging.WARNING, "", 0, "rpc", None, None)
    fields = {"peer": f"ipv4:10.0.0.1:5 {secret}", "rpc": "/a/B", "vendor_errcode": 40014, "duration_ms": 1.5}
    record.__dict__.update({**fields, "retried": True})
    RedactingFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["peer"] == f"ipv4:10.0.0.1:5 {MASK}"
    kept = (line["rpc"], line["vendor_errcode"], line["duration_ms"], line["retried"])
    assert kept == ("/a/B", 40014, 1.5, True)
    assert list(line)[4:] == [*fields, "retried"]  # the fields in the order they were passed


def test_json_timestamps_are_each_records_own_as_seconds_change() -> None:
    formatter = JsonFormatter()
    for created in (1_700_000_000.25, 1_700_000_000.75, 1_700_000_001.5, 1_699_999_999.0):
        record = logging.LogRecord("gateway", logging.INFO, "", 0, "tick", None, None)
        record.created, record.msecs = created, (created % 1) * 1000
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(record.msecs):03d}Z"
        assert json.loads(formatter.format(record))["ts"] == expected


# -- access tokens the vendors issue ---------------------------------------------------------------


def test_a_registered_access_token_is_masked_in_any_wording() -> None:
    token = "tok-unit-8e2c41d0b7"
    register_token(token, time.time() + 7200)
    assert redact(f"invalid access_token: {token}") == f"invalid access_token: {MASK}"
    assert token not in redact(f"token {token} expired")


def test_expired_tokens_are_forgotten_after_a_margin_and_the_registry_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = "tok-unit-expired-long-ago-3a1f"
    register_token(old, time.time() - redaction.TOKEN_MEMORY_SECONDS - 1)
    monkeypatch.setattr(redaction, "MAX_TOKENS", 3)
    issued = [f"tok-unit-bounded-{n:04d}" for n in range(10)]
    for n, token in enumerate(issued):
        register_token(token, time.time() + 100_000 + n)

    assert redact(old) == old, "forgotten once expired plus the margin"
    assert [redact(token) for token in issued[-3:]] == [MASK] * 3, "the newest are kept"
    assert redact(issued[0]) == issued[0], "the oldest gave way"


# Texts made of what the candidate check looks for (both cases, the quote and "=" cues, the
# letters the regex's case-insensitive match also takes: U+0130, U+0131, U+017F, U+212A), and
# anything else.
_CUES = st.sampled_from(
    [
        *("bearer", "BEARER", "Bearer", "bear", "authorization", "AUTHORIZATION", "author"),
        *("author\u0130zation", "author\u0131zation", "\u0130", "\u0131", "\u017f", "\u212a"),
        *("=", "b'", 'b"', "B'", "b", "'", '"', " ", "x"),
    ]
)
_TEXTS = st.lists(st.one_of(_CUES, st.text(max_size=6)), max_size=12).map("".join)


@settings(max_examples=400, derandomize=True)
@given(_TEXTS)
def test_the_candidate_check_finds_what_the_candidate_regex_finds(text: str) -> None:
    assert redaction._may_match(text) is (redaction._CANDIDATE.search(text) is not None)


def test_outside_ascii_the_regexs_case_folding_decides() -> None:
    assert redaction._may_match("Author\u0130zation: x")  # U+0130 is "i" to the regex, not to lower()
    assert not redaction._may_match("ipv4:127.0.0.1:45678 OK 01M8Y4G485H7EK14AH3QBWSN1D")
    assert not redaction._may_match("通知 sent")
