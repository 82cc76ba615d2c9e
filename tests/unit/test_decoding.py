"""Request deserializers never raise: bytes that do not decode become a marker, refused on use."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.decoding import Undecodable, decoded, decoded_stream, lenient_deserializer
from gateway.errors import InvalidArgument
from generated.notify.v1 import notification_service_pb2 as pb

deserialize = lenient_deserializer(pb.SendRequest)


def test_valid_bytes_decode_to_the_request() -> None:
    request = pb.SendRequest(account="team-wecom", idempotency_key="k-1")
    assert deserialize(request.SerializeToString()) == request


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xff\xff\xff", "Wire format was corrupt"),
        (b"\x0a\x02\xc3\x28", "String field had bad UTF-8"),  # account = two bytes that are not UTF-8
    ],
)
def test_bytes_that_do_not_decode_become_a_marker_naming_the_type(data: bytes, reason: str) -> None:
    assert deserialize(data) == Undecodable("notify.v1.SendRequest", reason)


def test_the_marker_is_refused_as_an_invalid_request() -> None:
    with pytest.raises(InvalidArgument) as caught:
        decoded(deserialize(b"\xff\xff"))
    [violation] = caught.value.violations
    assert violation.field == "request"
    assert violation.description == "is not a valid notify.v1.SendRequest: Wire format was corrupt"


async def test_a_stream_hands_on_the_messages_before_the_first_that_does_not_decode() -> None:
    parts = [pb.UploadMediaRequest(chunk=b"one"), pb.UploadMediaRequest(chunk=b"two")]
    bad = Undecodable("notify.v1.UploadMediaRequest", "Wire format was corrupt")

    async def stream() -> AsyncIterator[pb.UploadMediaRequest | Undecodable]:
        for item in (*parts, bad, pb.UploadMediaRequest(chunk=b"never read")):
            yield item

    received = []
    with pytest.raises(InvalidArgument) as caught:
        async for part in decoded_stream(stream()):
            received.append(part)
    assert received == parts
    [violation] = caught.value.violations
    assert violation.description.startswith("message 3 of the stream is not a valid")
