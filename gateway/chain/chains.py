"""Where the chains are assembled: one readable list of steps per operation.

Adding a step or a chain is one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.chain.chain import Chain
from gateway.chain.steps.assign_message_id import assign_message_id
from gateway.chain.steps.authorize_account import authorize_account
from gateway.chain.steps.check_message import check_message
from gateway.chain.steps.deduplicate import deduplicate
from gateway.chain.steps.deliver import deliver
from gateway.chain.steps.limit_rate import limit_rate
from gateway.chain.steps.recall_message import load_record, recall_message, validate_recall
from gateway.chain.steps.record_message import record_message
from gateway.chain.steps.resolve_account import resolve_account
from gateway.chain.steps.upload_inline_media import upload_inline_media
from gateway.chain.steps.upload_media import check_media_info, read_media_info, receive_media, upload_media
from gateway.chain.steps.validate_send import validate_send
from gateway.channels.base import ChannelAdapter
from gateway.store.stores import Stores
from generated.notify.v1 import notification_service_pb2 as pb


@dataclass(frozen=True)
class Chains:
    send: Chain[pb.SendResponse]
    recall: Chain[pb.RecallResponse]
    upload: Chain[pb.UploadMediaResponse]


@dataclass(frozen=True)
class Dependencies:
    accounts: Mapping[str, ChannelAdapter]
    stores: Stores


def build_chains(deps: Dependencies) -> Chains:
    account = resolve_account(deps.accounts)
    return Chains(
        send=Chain(
            "send",
            [
                assign_message_id,
                validate_send,
                account,
                authorize_account,
                check_message,
                deduplicate(deps.stores.idempotency),
                limit_rate(deps.stores.rate_limiter),
                upload_inline_media(deps.stores.media_cache),
                record_message(deps.stores.records),
                deliver,
            ],
        ),
        recall=Chain(
            "recall",
            [
                validate_recall,
                load_record(deps.stores.records),
                account,
                authorize_account,
                recall_message(deps.stores.records),
            ],
        ),
        upload=Chain[pb.UploadMediaResponse](
            "upload",
            [
                read_media_info,
                account,
                authorize_account,
                check_media_info,
                receive_media,
                upload_media(deps.stores.media_cache),
            ],
        ),
    )
