"""Where the chains are assembled: one readable list of steps per operation.

Adding a step or a chain is one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.chain.chain import Chain
from gateway.chain.steps.assign_message_id import assign_message_id
from gateway.chain.steps.check_message import check_message
from gateway.chain.steps.deliver import deliver
from gateway.chain.steps.resolve_account import resolve_account
from gateway.chain.steps.validate_send import validate_send
from gateway.channels.base import ChannelAdapter
from generated.notify.v1 import notification_service_pb2 as pb


@dataclass(frozen=True)
class Chains:
    send: Chain[pb.SendResponse]


def build_chains(accounts: Mapping[str, ChannelAdapter]) -> Chains:
    return Chains(
        send=Chain(
            "send",
            [
                assign_message_id,
                validate_send,
                resolve_account(accounts),
                check_message,
                deliver,
            ],
        ),
    )
