"""No request, however malformed, is answered INTERNAL or UNKNOWN, and the gateway keeps serving.

Every RPC gets its share of generated cases (tests/fuzz/messages.py), sent as raw bytes over real
gRPC to a real gateway in front of the sandbox, by a caller drawn among a tenant with every
account, a tenant with two, and keys that are wrong, missing or malformed. Whatever the answer, it
must be one the gateway chose (INVALID_ARGUMENT, NOT_FOUND, a vendor's refusal, ...), never
INTERNAL or UNKNOWN, and a health check must still answer SERVING after the case.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from generated.notify.v1 import notification_service_pb2 as pb
from tests.fuzz.conftest import CALLERS as CALLER_METADATA
from tests.fuzz.conftest import Fuzzed, fuzz_settings
from tests.fuzz.messages import Hints, binaries, messages, variations, wire
from tests.media_samples import AMR, JPEG, MP4, PNG, zip_file

ACCOUNTS = st.sampled_from(["team-wecom", "ops-dingtalk", "plain-dingtalk", "corp-app", "ding-app", "nobody"])
CALLERS = st.sampled_from(
    ["tenant"] * 24 + ["robots tenant", "wrong key", "no key", "empty bearer", "another scheme", "two keys"]
)

# Values the adapters accept, mixed into fields of these names wherever they are in a request.
SEND_HINTS: Hints = {
    "account": ACCOUNTS,
    "user_ids": st.sampled_from(["zhangsan", "lisi", "user01", "@all"]),
    "mobiles": st.just("13800000000"),
    "content": st.sampled_from(["deploy finished", "# title\n\n**bold**"]),
    "title": st.sampled_from(["Incident", "部署完成"]),
    "description": st.just("three services down"),
    "url": st.just("https://example.com/incident/1"),
    "pic_url": st.just("https://example.com/p.png"),
    "media_id": st.sampled_from(["media-file-1", "media-voice-1"]),
    "data": st.sampled_from([PNG, JPEG]),
    "idempotency_key": st.sampled_from(["retry-1", "retry-2"]),
}
UPLOAD_HINTS: Hints = {
    "account": ACCOUNTS,
    "type": st.sampled_from(
        [pb.MEDIA_TYPE_IMAGE, pb.MEDIA_TYPE_VOICE, pb.MEDIA_TYPE_VIDEO, pb.MEDIA_TYPE_FILE]
    ),
    "filename": st.sampled_from(["photo.png", "photo.jpg", "clip.amr", "clip.mp4", "notes.zip", "a.txt"]),
    "content_type": st.sampled_from(["", "image/png", "image/jpeg", "audio/amr", "video/mp4", "text/plain"]),
    "size": st.sampled_from([0, 1, len(PNG), 20 * 1024 * 1024 + 1]),
}
URL = "https://example.com/incident/1"
TEXT = pb.Message(text=pb.Text(content="deploy finished"))
USERS = pb.Recipients(user_ids=["zhangsan"])
DING_USERS = pb.Recipients(user_ids=["user01"])


def card(fields: dict[str, Any]) -> pb.Message:
    message = pb.Message(template_card=pb.TemplateCard())
    message.template_card.card.update(fields)
    return message


# Requests every channel delivers as they are: the fuzzer varies a field or two of one of them.
SEEDS = [
    pb.SendRequest(account="team-wecom", message=TEXT, recipients=USERS, labels={"team": "ops"}),
    pb.SendRequest(account="team-wecom", message=pb.Message(markdown=pb.Markdown(content="**up**"))),
    pb.SendRequest(account="team-wecom", message=pb.Message(image=pb.Image(data=PNG))),
    pb.SendRequest(
        account="team-wecom",
        message=pb.Message(news=pb.News(articles=[pb.Article(title="Incident", url=URL)])),
    ),
    pb.SendRequest(
        account="team-wecom",
        message=card({"card_type": "text_notice", "card_action": {"type": 1, "url": URL}}),
        idempotency_key="card-1",
    ),
    pb.SendRequest(account="ops-dingtalk", message=TEXT, recipients=pb.Recipients(mobiles=["13800000000"])),
    pb.SendRequest(account="ops-dingtalk", message=pb.Message(markdown=pb.Markdown(title="t", content="c"))),
    pb.SendRequest(
        account="plain-dingtalk",
        message=pb.Message(
            action_card=pb.ActionCard(
                title="Deploy", markdown="done", buttons=[pb.ActionButton(title="Open", url=URL)]
            )
        ),
    ),
    pb.SendRequest(
        account="plain-dingtalk",
        message=pb.Message(feed_card=pb.FeedCard(links=[pb.FeedLink(title="t", url=URL, pic_url=URL)])),
    ),
    pb.SendRequest(account="plain-dingtalk", message=pb.Message(link=pb.Link(title="t", text="x", url=URL))),
    pb.SendRequest(account="corp-app", message=TEXT, recipients=USERS, options=pb.SendOptions(safe=2)),
    pb.SendRequest(
        account="corp-app",
        message=pb.Message(text_card=pb.TextCard(title="t", description="d", url=URL)),
        recipients=USERS,
    ),
    pb.SendRequest(
        account="corp-app",
        message=card({"card_type": "button_interaction", "task_id": "t1"}),
        recipients=USERS,
    ),
    pb.SendRequest(account="corp-app", message=pb.Message(image=pb.Image(data=PNG)), recipients=USERS),
    pb.SendRequest(account="ding-app", message=TEXT, recipients=DING_USERS),
    pb.SendRequest(
        account="ding-app",
        message=pb.Message(
            oa=pb.Oa(
                message_url=URL,
                head=pb.OaHead(bgcolor="FFBBBBBB", text="h"),
                body=pb.OaBody(content="c", form=[pb.KeyValue(key="k", value="v")]),
            )
        ),
        recipients=DING_USERS,
    ),
]
FILES = [PNG, JPEG, AMR, MP4, zip_file(), b"plain text, a few bytes over the minimum\n"]


def upload(account: str, media_type: int, filename: str, body: bytes) -> tuple[pb.MediaInfo, bytes]:
    return pb.MediaInfo(account=account, type=media_type, filename=filename, size=len(body)), body


# Uploads each channel takes as they are: the fuzzer varies their info, their bytes and the stream.
UPLOAD_SEEDS = [
    upload("corp-app", pb.MEDIA_TYPE_IMAGE, "photo.png", PNG),
    upload("corp-app", pb.MEDIA_TYPE_VOICE, "clip.amr", AMR),
    upload("corp-app", pb.MEDIA_TYPE_VIDEO, "clip.mp4", MP4),
    upload("corp-app", pb.MEDIA_TYPE_FILE, "notes.zip", zip_file()),
    upload("team-wecom", pb.MEDIA_TYPE_FILE, "notes.zip", zip_file()),
    upload("team-wecom", pb.MEDIA_TYPE_VOICE, "clip.amr", AMR),
    upload("ding-app", pb.MEDIA_TYPE_IMAGE, "photo.jpg", JPEG),
    upload("ding-app", pb.MEDIA_TYPE_FILE, "notes.zip", zip_file()),
]


async def send_one(fuzzed: Fuzzed, rpc: str, parts: list[bytes], caller: str) -> None:
    await fuzzed.call(rpc, parts, caller)
    await fuzzed.assert_serving()
    if fuzzed.cases % 10 == 0:
        # The vendors' rate windows open again (the sandbox forgets its traffic), so robots keep
        # delivering rather than answering every later case with their rate limit.
        fuzzed.gateway.sandbox.clear()


def unary_case(
    data: st.DataObject, request_type: Any, hints: Hints, seeds: list[Any] | None = None
) -> list[bytes]:
    """A request varied from a seed, or generated from nothing; then its bytes, now and then broken."""
    generated = messages(request_type.DESCRIPTOR, hints)
    strategy = (
        generated if not seeds else st.one_of(variations(seeds, hints), variations(seeds, hints), generated)
    )
    request = data.draw(strategy, label="request")
    return [data.draw(wire(request), label="bytes")]


async def test_every_seed_is_delivered_as_it_is(fuzzed: Fuzzed) -> None:
    for request in SEEDS:
        sent = await fuzzed.gateway.stub.Send(request, metadata=CALLER_METADATA["tenant"], timeout=5)
        assert sent.state == pb.MESSAGE_STATE_SENT, request


@st.composite
def upload_streams(draw: st.DrawFn) -> list[bytes]:
    """Info then chunks of a file a channel takes, or not quite: info or bytes varied, info missing or
    twice, a stray part, a part's bytes broken."""
    seed_info, seed_body = draw(st.sampled_from(UPLOAD_SEEDS))
    info = draw(
        st.one_of(
            variations([seed_info], UPLOAD_HINTS),
            variations([seed_info], UPLOAD_HINTS),
            messages(pb.MediaInfo.DESCRIPTOR, UPLOAD_HINTS),
        )
    )
    body = draw(st.one_of(st.just(seed_body), st.just(seed_body), st.sampled_from(FILES), binaries()))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(body)), max_size=3)))
    chunks = [body[start:end] for start, end in pairwise([0, *cuts, len(body)])]
    parts = [pb.UploadMediaRequest(info=info), *(pb.UploadMediaRequest(chunk=c) for c in chunks)]
    shape = draw(st.sampled_from(["as is"] * 4 + ["no info", "info twice", "stray part", "empty"]))
    if shape == "no info":
        parts = parts[1:]
    elif shape == "info twice":
        parts.insert(draw(st.integers(min_value=1, max_value=len(parts))), parts[0])
    elif shape == "stray part":
        stray = draw(messages(pb.UploadMediaRequest.DESCRIPTOR, UPLOAD_HINTS))
        parts.insert(draw(st.integers(min_value=0, max_value=len(parts))), stray)
    elif shape == "empty":
        parts = []
    raw = [part.SerializeToString() for part in parts]
    if raw and draw(st.booleans()):
        broken = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[broken] = draw(wire(parts[broken]))
    return raw


@fuzz_settings(share=0.45)
@given(data=st.data())
async def test_send(fuzzed: Fuzzed, data: st.DataObject) -> None:
    parts = unary_case(data, pb.SendRequest, SEND_HINTS, SEEDS)
    await send_one(fuzzed, "Send", parts, data.draw(CALLERS, label="caller"))


@fuzz_settings(share=0.15)
@given(data=st.data())
async def test_upload_media(fuzzed: Fuzzed, data: st.DataObject) -> None:
    parts = data.draw(upload_streams(), label="stream")
    await send_one(fuzzed, "UploadMedia", parts, data.draw(CALLERS, label="caller"))


@fuzz_settings(share=0.12)
@given(data=st.data())
async def test_list_messages(fuzzed: Fuzzed, data: st.DataObject) -> None:
    hints = {"account": ACCOUNTS, "page_token": st.sampled_from(fuzzed.page_tokens)}
    parts = unary_case(data, pb.ListMessagesRequest, hints)
    await send_one(fuzzed, "ListMessages", parts, data.draw(CALLERS, label="caller"))


@fuzz_settings(share=0.10)
@given(data=st.data())
async def test_recall(fuzzed: Fuzzed, data: st.DataObject) -> None:
    parts = unary_case(data, pb.RecallRequest, {"message_id": st.sampled_from(fuzzed.known_ids)})
    await send_one(fuzzed, "Recall", parts, data.draw(CALLERS, label="caller"))


@fuzz_settings(share=0.09)
@given(data=st.data())
async def test_get_message(fuzzed: Fuzzed, data: st.DataObject) -> None:
    parts = unary_case(data, pb.GetMessageRequest, {"message_id": st.sampled_from(fuzzed.known_ids)})
    await send_one(fuzzed, "GetMessage", parts, data.draw(CALLERS, label="caller"))


@fuzz_settings(share=0.09)
@given(data=st.data())
async def test_watch_message(fuzzed: Fuzzed, data: st.DataObject) -> None:
    parts = unary_case(data, pb.WatchMessageRequest, {"message_id": st.sampled_from(fuzzed.known_ids)})
    await send_one(fuzzed, "WatchMessage", parts, data.draw(CALLERS, label="caller"))
