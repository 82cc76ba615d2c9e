"""Credentials never reach what the gateway writes: redact() and the logging filter."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from gateway.redaction import MASK, RedactingFilter, redact, register_secrets


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
