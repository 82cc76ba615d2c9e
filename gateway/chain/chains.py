"""Where the chains are assembled: one readable list of steps per operation.

Adding a step or a chain is one line here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from gateway.chain.chain import Chain
from gateway.chain.steps.assign_message_id import assign_message_id
from gateway.chain.steps.authorize_account import authorize_account
from gateway.chain.steps.check_message import check_message
from gateway.chain.steps.deduplicate import deduplicate
from gateway.chain.steps.deliver import deliver
from gateway.chain.steps.enqueue import enqueue
from gateway.chain.steps.find_message import find_message, validate_message_id
from gateway.chain.steps.limit_rate import limit_rate
from gateway.chain.steps.limit_uploads import UploadSlots, limit_concurrent_uploads, limit_upload_time
from gateway.chain.steps.message_status import get_message, list_messages, watch_message
from gateway.chain.steps.recall_message import recall_message
from gateway.chain.steps.record_message import record_message
from gateway.chain.steps.resolve_account import resolve_account
from gateway.chain.steps.upload_inline_media import upload_inline_media
from gateway.chain.steps.upload_media import check_media_info, read_media_info, receive_media, upload_media
from gateway.chain.steps.validate_send import validate_send
from gateway.channels.base import ChannelAdapter
from gateway.config import QueueSettings, UploadSettings
from gateway.lifecycle.ledger import Ledger
from gateway.lifecycle.reports import DeliveryReports
from gateway.memory_trim import MemoryTrimmer
from gateway.queue.streams import JobQueue
from gateway.store.stores import Stores
from generated.notify.v1 import notification_service_pb2 as pb


@dataclass(frozen=True)
class Chains:
    send: Chain[pb.SendResponse]
    recall: Chain[pb.RecallResponse]
    upload: Chain[pb.UploadMediaResponse]
    get: Chain[pb.GetMessageResponse]
    list: Chain[pb.ListMessagesResponse]
    watch: Chain[AsyncIterator[pb.WatchMessageResponse]]


@dataclass(frozen=True)
class Dependencies:
    accounts: Mapping[str, ChannelAdapter]
    stores: Stores
    ledger: Ledger
    reports: DeliveryReports
    uploads: UploadSettings
    queue: JobQueue | None = None  # None: queued Sends are refused (a memory store)
    queue_settings: QueueSettings = field(default_factory=QueueSettings)


def build_chains(deps: Dependencies) -> Chains:
    account = resolve_account(deps.accounts)
    message = find_message(deps.ledger)
    uploads = deps.uploads
    return Chains(
        send=Chain(
            "send",
            [
                assign_message_id,
                validate_send,
                account,
                authorize_account,
                check_message,
                # A queued Send answers here; a sync Send goes on to be delivered in the call.
                enqueue(
                    deps.queue,
                    deps.stores.idempotency,
                    deps.ledger,
                    deps.stores.rate_limiter,
                    deps.queue_settings,
                ),
                deduplicate(deps.stores.idempotency, deps.ledger, deps.stores.admission),
                record_message(deps.ledger, deps.stores.admission),
                limit_rate(deps.stores.rate_limiter),
                upload_inline_media(deps.stores.media_cache),
                deliver(deps.ledger, deps.reports),
            ],
        ),
        recall=Chain(
            "recall",
            [validate_message_id, message, account, authorize_account, recall_message(deps.ledger)],
        ),
        upload=Chain[pb.UploadMediaResponse](
            "upload",
            [
                limit_upload_time(uploads.idle_timeout_seconds, uploads.max_seconds),
                read_media_info,
                account,
                authorize_account,
                check_media_info,
                limit_concurrent_uploads(UploadSlots(uploads.max_concurrent), MemoryTrimmer()),
                receive_media(uploads.memory_bytes, uploads.spool_directory),
                upload_media(deps.stores.media_cache),
            ],
        ),
        get=Chain("get", [validate_message_id, message, get_message]),
        list=Chain("list", [list_messages(deps.ledger)]),
        watch=Chain("watch", [validate_message_id, message, watch_message(deps.ledger)]),
    )
