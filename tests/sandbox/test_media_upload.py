"""Media uploads check type, size and format like the vendors (docs/vendors.md, Media under
WeCom application messages, WeCom group robot and DingTalk work notifications)."""

from __future__ import annotations

import hashlib
import time

import pytest

from gateway.sandbox import MediaRecord, SandboxState

from .harness import (
    AMR,
    BMP,
    GIF,
    JPEG,
    MB,
    MP3,
    MP4,
    PNG,
    WAV,
    WECOM_APP,
    WECOM_KEY,
    AppClient,
    RobotClient,
)

PDF = b"%PDF-1.7 quarterly report"


@pytest.mark.parametrize(
    ("media_type", "content", "filename"),
    [
        ("image", PNG, "chart.png"),
        ("image", JPEG, "photo.jpg"),
        ("voice", AMR, "memo.amr"),
        ("video", MP4, "demo.mp4"),
        ("file", PDF, "report.pdf"),
    ],
)
async def test_wecom_app_uploads_each_type_and_keeps_a_record(
    apps: AppClient, state: SandboxState, media_type: str, content: bytes, filename: str
) -> None:
    before = int(state.clock.now())

    reply = await apps.wecom_upload(media_type, content, filename)

    assert reply.errcode == 0, reply.text
    assert set(reply.json) == {"errcode", "errmsg", "type", "media_id", "created_at"}
    assert reply.json["type"] == media_type
    assert isinstance(reply.json["created_at"], str), "WeCom answers created_at as a string"
    assert before <= int(reply.json["created_at"]) <= state.clock.now()
    record = state.media(WECOM_APP)[reply.json["media_id"]]
    assert (record.type, record.filename, record.size) == (media_type, filename, len(content))
    assert record.sha256 == hashlib.sha256(content).hexdigest()
    assert record.content_type == "application/octet-stream"


@pytest.mark.parametrize(
    ("media_type", "content", "errcode"),
    [
        ("image", GIF, 40005),
        ("image", PNG + b"\x00" * (10 * MB), 45001),
        ("voice", MP3, 40005),
        ("voice", AMR + b"\x00" * (2 * MB), 45001),
        ("video", PNG, 40005),
        ("video", MP4 + b"\x00" * (10 * MB), 45001),
        ("file", b"\x00" * (20 * MB + 1), 45001),
        ("file", b"12345", 40006),
        ("sticker", PNG, 40004),
        ("", PNG, 40004),
    ],
    ids=[
        "gif image",
        "image over 10 MB",
        "mp3 voice",
        "voice over 2 MB",
        "png video",
        "video over 10 MB",
        "file over 20 MB",
        "5 bytes",
        "unknown type",
        "no type",
    ],
)
async def test_wecom_app_refuses_what_the_vendor_refuses(
    apps: AppClient, state: SandboxState, media_type: str, content: bytes, errcode: int
) -> None:
    reply = await apps.wecom_upload(media_type, content)

    assert reply.errcode == errcode, reply.text
    assert state.media(WECOM_APP) == {}
    [entry] = [entry for entry in state.received("wecom_app") if entry.msgtype == "upload"]
    assert entry.errcode == errcode and entry.body["type"] == media_type


async def test_exactly_the_limit_is_accepted(apps: AppClient) -> None:
    assert (await apps.wecom_upload("voice", AMR + b"\x00" * (2 * MB - len(AMR)))).errcode == 0


async def test_an_upload_is_recorded_without_its_content(apps: AppClient, state: SandboxState) -> None:
    reply = await apps.wecom_upload("file", PDF, "report.pdf")

    [entry] = [entry for entry in state.received("wecom_app") if entry.msgtype == "upload"]
    assert entry.body == {
        "type": "file",
        "filename": "report.pdf",
        "content_type": "application/octet-stream",
        "size": len(PDF),
        "sha256": hashlib.sha256(PDF).hexdigest(),
    }
    assert reply.json["media_id"] not in repr(entry)
    assert state.delivered() == []


async def test_a_body_without_the_media_part_is_refused(apps: AppClient) -> None:
    token = await apps.wecom_token()
    params = {"access_token": token, "type": "file"}

    wrong_part = await apps.upload("/cgi-bin/media/upload", params, PDF, "r.pdf", field="file")
    async with apps.session.post(
        f"{apps.base_url}/cgi-bin/media/upload", params=params, data=b"raw bytes"
    ) as response:
        not_multipart = await response.json()

    assert wrong_part.errcode == 40035
    assert not_multipart["errcode"] == 40035


async def test_an_upload_needs_a_valid_token(apps: AppClient) -> None:
    reply = await apps.upload("/cgi-bin/media/upload", {"access_token": "nope", "type": "file"}, PDF)

    assert reply.errcode == 40014


async def test_an_oversized_upload_is_answered_without_reading_it_all(apps: AppClient) -> None:
    started = time.monotonic()

    reply = await apps.wecom_upload("voice", AMR + b"\x00" * (30 * MB))

    assert reply.errcode == 45001
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("media_type", "content", "filename"),
    [
        ("image", PNG, "a.png"),
        ("image", JPEG, "a.jpg"),
        ("image", GIF, "a.gif"),
        ("image", BMP, "a.bmp"),
        ("voice", AMR, "a.amr"),
        ("voice", MP3, "a.mp3"),
        ("voice", WAV, "a.wav"),
        ("video", MP4, "a.mp4"),
        ("file", PDF, "report.PDF"),
        ("file", b"PK\x03\x04 archive", "bundle.zip"),
        ("file", b"\xd0\xcf\x11\xe0 legacy", "sheet.xls"),
    ],
)
async def test_dingtalk_uploads_each_type_with_a_millisecond_timestamp(
    apps: AppClient, state: SandboxState, media_type: str, content: bytes, filename: str
) -> None:
    reply = await apps.ding_upload(media_type, content, filename)

    assert reply.errcode == 0, reply.text
    assert reply.json["type"] == media_type
    assert reply.json["media_id"].startswith("@")
    assert isinstance(reply.json["created_at"], int)
    assert abs(reply.json["created_at"] - state.clock.now() * 1000) < 5000
    assert state.media("notify")[reply.json["media_id"]].filename == filename


@pytest.mark.parametrize(
    ("media_type", "content", "filename", "errcode"),
    [
        ("image", MP4, "a.png", 40005),
        ("image", PNG + b"\x00" * (20 * MB), "a.png", 45001),
        ("voice", PNG, "a.amr", 40005),
        ("voice", AMR + b"\x00" * (2 * MB), "a.amr", 45001),
        ("video", PNG, "a.mp4", 40005),
        ("file", PDF, "report.exe", 40005),
        ("file", PDF, "noextension", 40005),
        ("file", b"12345", "a.pdf", 40006),
        ("gif", GIF, "a.gif", 40004),
    ],
    ids=[
        "mp4 as image",
        "image over 20 MB",
        "png as voice",
        "voice over 2 MB",
        "png as video",
        "exe file",
        "file without extension",
        "5 bytes",
        "unknown type",
    ],
)
async def test_dingtalk_refuses_what_the_vendor_refuses(
    apps: AppClient, state: SandboxState, media_type: str, content: bytes, filename: str, errcode: int
) -> None:
    reply = await apps.ding_upload(media_type, content, filename)

    assert reply.errcode == errcode, reply.text
    assert state.media("notify") == {}


async def test_robot_upload_then_file_and_voice_sends(
    robots: RobotClient, apps: AppClient, state: SandboxState
) -> None:
    path = "/cgi-bin/webhook/upload_media"
    file_reply = await apps.upload(path, {"key": WECOM_KEY, "type": "file"}, PDF, "report.pdf")
    voice_reply = await apps.upload(path, {"key": WECOM_KEY, "type": "voice"}, AMR, "memo.amr")

    assert file_reply.errcode == voice_reply.errcode == 0
    assert isinstance(file_reply.json["created_at"], str)
    file_id, voice_id = file_reply.json["media_id"], voice_reply.json["media_id"]
    assert (await robots.wecom({"msgtype": "file", "file": {"media_id": file_id}})).errcode == 0
    assert (await robots.wecom({"msgtype": "voice", "voice": {"media_id": voice_id}})).errcode == 0
    assert set(state.media("ops")) == {file_id, voice_id}
    assert [entry.msgtype for entry in state.delivered("wecom_robot")] == ["file", "voice"]


async def test_robot_media_expires_after_3_days(
    robots: RobotClient, apps: AppClient, state: SandboxState
) -> None:
    reply = await apps.upload(
        "/cgi-bin/webhook/upload_media", {"key": WECOM_KEY, "type": "file"}, PDF, "r.pdf"
    )
    state.clock.advance(3 * 24 * 3600)

    refused = await robots.wecom({"msgtype": "file", "file": {"media_id": reply.json["media_id"]}})

    assert refused.errcode == 40007


@pytest.mark.parametrize(
    ("query", "content", "errcode"),
    [
        ({"key": "no-such-key", "type": "file"}, PDF, 93000),
        ({"key": WECOM_KEY, "type": "image"}, PNG, 40004),
        ({"key": WECOM_KEY, "type": "video"}, MP4, 40004),
        ({"key": WECOM_KEY, "type": "voice"}, MP3, 40005),
        ({"key": WECOM_KEY, "type": "voice"}, AMR + b"\x00" * (2 * MB), 45001),
        ({"key": WECOM_KEY, "type": "file"}, b"\x00" * (20 * MB + 1), 45001),
        ({"key": WECOM_KEY, "type": "file"}, b"tiny", 40006),
    ],
    ids=["unknown key", "image", "video", "mp3 voice", "voice over 2 MB", "file over 20 MB", "4 bytes"],
)
async def test_robot_upload_refuses_what_the_vendor_refuses(
    apps: AppClient, state: SandboxState, query: dict[str, str], content: bytes, errcode: int
) -> None:
    reply = await apps.upload("/cgi-bin/webhook/upload_media", query, content, "x.bin")

    assert reply.errcode == errcode, reply.text
    assert state.media("ops") == {}
    assert WECOM_KEY not in reply.text


def test_add_robot_media_still_works_and_shows_as_a_placeholder(state: SandboxState) -> None:
    state.add_robot_media("ops", "media-1")

    record = state.media("ops")["media-1"]

    assert isinstance(record, MediaRecord)
    assert (record.type, record.size) == ("", 0)


def test_media_of_an_unknown_name_raises(state: SandboxState) -> None:
    with pytest.raises(KeyError):
        state.media("nobody")
