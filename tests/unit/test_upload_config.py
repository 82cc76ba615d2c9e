"""The ``uploads`` section (and the stream window under ``server``): safe defaults, bad values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import ConfigError, parse_config


def test_without_an_uploads_section_the_limits_are_the_documented_defaults() -> None:
    config = parse_config("auth: none\n")

    uploads = config.uploads
    assert (uploads.max_concurrent, uploads.memory_bytes, uploads.spool_directory) == (32, 256 * 1024, None)
    assert (uploads.idle_timeout_seconds, uploads.max_seconds) == (30.0, 300.0)
    assert config.server.receive_window_bytes == 1024 * 1024


def test_the_limits_can_be_set(tmp_path: Path) -> None:
    config = parse_config(
        f"auth: none\nuploads: {{max_concurrent: 4, memory_bytes: 0, spool_directory: {tmp_path},"
        " idle_timeout_seconds: 5, max_seconds: 60}\n"
    )

    assert config.uploads.max_concurrent == 4
    assert config.uploads.memory_bytes == 0
    assert config.uploads.spool_directory == tmp_path


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "uploads: {spool_directory: /no/such/directory}",
            "uploads.spool_directory: /no/such/directory is not",
        ),
        ("uploads: {max_concurrent: 0}", "uploads.max_concurrent:"),
        ("uploads: {idle_timeout_seconds: 0}", "uploads.idle_timeout_seconds:"),
        ("uploads: {max_upload_bytes: 1}", "uploads.max_upload_bytes: unknown field"),
        ("server: {receive_window_bytes: 1000}", "server.receive_window_bytes:"),
    ],
    ids=["missing-spool-directory", "no-uploads", "no-idle-time", "unknown-key", "tiny-window"],
)
def test_a_bad_value_stops_start_up_naming_the_field(section: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"auth: none\n{section}\n")

    assert expected in str(caught.value)
