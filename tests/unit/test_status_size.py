"""An error's status stays small enough for any client to receive, whatever the caller sent."""

from __future__ import annotations

from google.rpc import error_details_pb2, status_pb2

from gateway.errors import InvalidArgument, VendorError, VendorOutcome, Violation
from gateway.interceptors.errors import status_of
from gateway.interceptors.status_size import DETAILS_BYTES, MESSAGE_BYTES, TEXT_BYTES, clip


def violations_of(status: status_pb2.Status) -> list[error_details_pb2.BadRequest.FieldViolation]:
    [packed] = [d for d in status.details if d.Is(error_details_pb2.BadRequest.DESCRIPTOR)]
    bad = error_details_pb2.BadRequest()
    packed.Unpack(bad)
    return list(bad.field_violations)


def test_clip_cuts_at_a_character_boundary_and_marks_the_cut() -> None:
    assert clip("short", 10) == "short"
    clipped = clip("警" * 100, 20)
    assert clipped == "警" * 5 + "…" and len(clipped.encode()) <= 20


def test_a_small_status_is_left_as_it_is() -> None:
    error = InvalidArgument([Violation("message.text.content", "is required")])
    status = status_of(error)
    assert status.message == "message.text.content: is required"
    assert [(v.field, v.description) for v in violations_of(status)] == [
        ("message.text.content", "is required")
    ]


def test_long_texts_are_clipped() -> None:
    huge = "x" * 70_000
    status = status_of(InvalidArgument([Violation(f"labels[{huge}]", f"is {huge}")]))
    assert len(status.message.encode()) <= MESSAGE_BYTES
    [violation] = violations_of(status)
    assert len(violation.field.encode()) <= TEXT_BYTES and violation.field.startswith("labels[")
    assert len(violation.description.encode()) <= TEXT_BYTES


def test_vendor_errmsg_in_error_info_is_clipped() -> None:
    error = VendorError(
        "refused",
        outcome=VendorOutcome.INVALID_REQUEST,
        channel="wecom_robot",
        account="team-wecom",
        errcode=40035,
        errmsg="e" * 10_000,
    )
    [packed] = status_of(error).details
    info = error_details_pb2.ErrorInfo()
    packed.Unpack(info)
    assert len(info.metadata["vendor_errmsg"].encode()) <= TEXT_BYTES
    assert info.metadata["vendor_errcode"] == "40035"


def test_violations_past_the_budget_are_counted_not_listed() -> None:
    many = [Violation(f"message.news.articles[{i}].title", "x" * 200) for i in range(100)]
    status = status_of(InvalidArgument(many))
    assert status.ByteSize() <= DETAILS_BYTES
    listed = violations_of(status)
    assert listed[0].field == "message.news.articles[0].title"
    shown = len(listed) - 1
    assert listed[-1].description == f"{100 - shown} more violations not listed"
