"""Recall refuses clearly what cannot be recalled, and never calls the vendor to find out."""

from __future__ import annotations

import grpc
import pytest

from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import Gateway
from tests.rich_status import RichError, rich_error


async def recall_refused(gateway: Gateway, message_id: str) -> RichError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.Recall(pb.RecallRequest(message_id=message_id))
    return rich_error(caught.value)


async def test_recall_without_a_message_id_is_invalid(gateway: Gateway) -> None:
    error = await recall_refused(gateway, "")
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "message_id" in error.violations


async def test_recall_of_an_unknown_message_is_not_found(gateway: Gateway) -> None:
    error = await recall_refused(gateway, "01J0000000000000000000000")
    assert error.code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("account", ["team-wecom", "ops-dingtalk"])
async def test_robot_messages_cannot_be_recalled(gateway: Gateway, account: str) -> None:
    sent = await gateway.stub.Send(
        pb.SendRequest(account=account, message=pb.Message(text=pb.Text(content="hi")))
    )
    assert sent.recallable is False
    before = len(gateway.sandbox.received())

    error = await recall_refused(gateway, sent.message_id)

    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "cannot recall" in error.message
    assert error.error_info is not None and error.error_info.reason == "RECALL_UNSUPPORTED"
    assert len(gateway.sandbox.received()) == before
