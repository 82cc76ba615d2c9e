"""NotifyClient: the gateway from ordinary (blocking) code, on grpc's sync API.

Same surface and behaviour as AsyncNotifyClient (deadlines, retries, one idempotency key per logical
send, typed errors), built on grpc's synchronous channel rather than by running an event loop,
so it works in threads, WSGI apps and scripts alike. It is thread-safe: share one per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import grpc
from notify_client_proto import notification_service_pb2 as pb

from notify_client._common import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_TIMEOUT,
    DEFAULT_UPLOAD_TIMEOUT,
    DEFAULT_WATCH_TIMEOUT,
    GET_MESSAGE,
    LIST_MESSAGES,
    RECALL,
    SEND,
    UPLOAD_MEDIA,
    WATCH_MESSAGE,
    ImageSource,
    PathLike,
    WatchProgress,
    card_message,
    connection,
    file_parts,
    image_message,
    list_messages_request,
    markdown_message,
    media_info,
    next_page,
    read_image,
    send_request,
    text_message,
    with_idempotency_key,
)
from notify_client.errors import NotifyError, error_from_rpc_error
from notify_client.retry import RetryEvent, RetryPolicy

T = TypeVar("T")

__all__ = ["NotifyClient"]


class NotifyClient:
    """A blocking client for notify.v1.NotificationService; arguments as for AsyncNotifyClient."""

    def __init__(
        self,
        address: str,
        api_key: str | None = None,
        *,
        insecure: bool = False,
        root_certificates: bytes | PathLike | None = None,
        certificate_chain: bytes | PathLike | None = None,
        private_key: bytes | PathLike | None = None,
        server_hostname: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        upload_timeout: float = DEFAULT_UPLOAD_TIMEOUT,
        watch_timeout: float = DEFAULT_WATCH_TIMEOUT,
        retry: RetryPolicy | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        channel_options: Mapping[str, Any] | None = None,
    ) -> None:
        conn = connection(
            address,
            api_key,
            insecure=insecure,
            root_certificates=root_certificates,
            certificate_chain=certificate_chain,
            private_key=private_key,
            server_hostname=server_hostname,
            options=channel_options,
        )
        if conn.credentials is None:
            self._channel = grpc.insecure_channel(conn.address, options=conn.options)
        else:
            self._channel = grpc.secure_channel(conn.address, conn.credentials, options=conn.options)
        self._metadata = conn.metadata
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self.watch_timeout = watch_timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.chunk_size = chunk_size
        self._send = self._channel.unary_unary(
            SEND,
            request_serializer=pb.SendRequest.SerializeToString,
            response_deserializer=pb.SendResponse.FromString,
        )
        self._recall = self._channel.unary_unary(
            RECALL,
            request_serializer=pb.RecallRequest.SerializeToString,
            response_deserializer=pb.RecallResponse.FromString,
        )
        self._upload = self._channel.stream_unary(
            UPLOAD_MEDIA,
            request_serializer=pb.UploadMediaRequest.SerializeToString,
            response_deserializer=pb.UploadMediaResponse.FromString,
        )
        self._get = self._channel.unary_unary(
            GET_MESSAGE,
            request_serializer=pb.GetMessageRequest.SerializeToString,
            response_deserializer=pb.GetMessageResponse.FromString,
        )
        self._list = self._channel.unary_unary(
            LIST_MESSAGES,
            request_serializer=pb.ListMessagesRequest.SerializeToString,
            response_deserializer=pb.ListMessagesResponse.FromString,
        )
        self._watch = self._channel.unary_stream(
            WATCH_MESSAGE,
            request_serializer=pb.WatchMessageRequest.SerializeToString,
            response_deserializer=pb.WatchMessageResponse.FromString,
        )

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- raw calls -------------------------------------------------------------------------------

    def send(self, request: pb.SendRequest, *, timeout: float | None = None) -> pb.SendResponse:
        """Sends one message, retried under one idempotency key (see AsyncNotifyClient.send).

        A response with ``state == pb.MESSAGE_STATE_UNKNOWN`` (and ``duplicate=True``, after a
        retry) means the vendor may have delivered it and the gateway will not send it again.
        """
        keyed = with_idempotency_key(request)
        deadline = timeout or self.timeout
        try:
            return self._with_retries(
                "Send",
                lambda: cast(pb.SendResponse, self._send(keyed, timeout=deadline, metadata=self._metadata)),
                keyed.idempotency_key,
            )
        except NotifyError as error:
            error.idempotency_key = keyed.idempotency_key
            raise

    def recall(self, message_id: str, *, timeout: float | None = None) -> pb.RecallResponse:
        """Withdraws a message by the gateway's message_id; retried like Send."""
        request = pb.RecallRequest(message_id=message_id)
        deadline = timeout or self.timeout
        return self._with_retries(
            "Recall",
            lambda: cast(pb.RecallResponse, self._recall(request, timeout=deadline, metadata=self._metadata)),
            None,
        )

    def upload_media(
        self, info: pb.MediaInfo, chunks: Iterable[bytes], *, timeout: float | None = None
    ) -> pb.UploadMediaResponse:
        """Streams ``info`` then ``chunks``; not retried (a stream cannot be replayed)."""

        def parts() -> Iterator[pb.UploadMediaRequest]:
            yield pb.UploadMediaRequest(info=info)
            for chunk in chunks:
                yield pb.UploadMediaRequest(chunk=chunk)

        try:
            return cast(
                pb.UploadMediaResponse,
                self._upload(parts(), timeout=timeout or self.upload_timeout, metadata=self._metadata),
            )
        except grpc.RpcError as exc:
            raise error_from_rpc_error(exc) from exc

    # -- message records ---------------------------------------------------------------------------

    def get_message(self, message_id: str, *, timeout: float | None = None) -> pb.MessageRecord:
        """What the gateway knows of one message; see AsyncNotifyClient.get_message."""
        request = pb.GetMessageRequest(message_id=message_id)
        deadline = timeout or self.timeout
        response = self._with_retries(
            "GetMessage",
            lambda: cast(
                pb.GetMessageResponse, self._get(request, timeout=deadline, metadata=self._metadata)
            ),
            None,
        )
        return response.message

    def list_messages(
        self,
        *,
        account: str | None = None,
        states: Iterable[pb.MessageState.ValueType | str] = (),
        labels: Mapping[str, str] | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        timeout: float | None = None,
    ) -> pb.ListMessagesResponse:
        """One page of the tenant's messages, newest first; see AsyncNotifyClient.list_messages."""
        request = list_messages_request(
            account=account,
            states=states,
            labels=labels,
            start_time=start_time,
            end_time=end_time,
            page_size=page_size,
            page_token=page_token,
        )
        return self._list_page(request, timeout)

    def iter_messages(
        self,
        *,
        account: str | None = None,
        states: Iterable[pb.MessageState.ValueType | str] = (),
        labels: Mapping[str, str] | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[pb.MessageRecord]:
        """Every matching message, newest first, fetching pages as the iteration reaches them."""
        request: pb.ListMessagesRequest | None = list_messages_request(
            account=account,
            states=states,
            labels=labels,
            start_time=start_time,
            end_time=end_time,
            page_size=page_size,
            page_token=None,
        )
        while request is not None:
            page = self._list_page(request, timeout)
            yield from page.messages
            request = next_page(request, page)

    def watch_message(self, message_id: str, *, timeout: float | None = None) -> Iterator[pb.MessageRecord]:
        """The message's record now and at each change, until a final state or ``timeout``.

        As AsyncNotifyClient.watch_message: the loop ends after the final record, a deadline that
        passes first raises DeadlineExceededError, broken streams are reopened per the RetryPolicy.
        Leaving the loop early and closing the generator (``contextlib.closing``) cancels the call.
        """
        request = pb.WatchMessageRequest(message_id=message_id)
        progress = WatchProgress.start(self.retry, timeout or self.watch_timeout)
        while True:
            remaining = progress.remaining()
            if remaining <= 0:
                raise progress.timed_out()
            call = self._watch(request, timeout=remaining, metadata=self._metadata)
            cause: BaseException | None = None
            try:
                for response in call:
                    record = cast(pb.WatchMessageResponse, response).message
                    if progress.fresh(record):
                        yield record
                    if record.final:
                        return
                error = progress.ended_early()
            except grpc.RpcError as exc:
                error, cause = error_from_rpc_error(exc), exc
            finally:
                call.cancel()
            if error.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise progress.timed_out() from cause
            delay = progress.delay_after(error)
            if delay is None:
                raise error from cause
            time.sleep(delay)

    # -- typed helpers -----------------------------------------------------------------------------

    def send_text(
        self,
        account: str,
        content: str,
        *,
        recipients: pb.Recipients | None = None,
        labels: Mapping[str, str] | None = None,
        options: pb.SendOptions | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> pb.SendResponse:
        """Plain text. For robots ``recipients`` are @-mentioned; for app channels they receive it."""
        return self.send(
            send_request(
                account,
                text_message(content),
                recipients=recipients,
                labels=labels,
                options=options,
                idempotency_key=idempotency_key,
            ),
            timeout=timeout,
        )

    def send_markdown(
        self,
        account: str,
        content: str,
        *,
        title: str = "",
        dialect: pb.Markdown.Dialect.ValueType = pb.Markdown.DIALECT_UNSPECIFIED,
        recipients: pb.Recipients | None = None,
        labels: Mapping[str, str] | None = None,
        options: pb.SendOptions | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> pb.SendResponse:
        """Markdown in the vendor's subset. DingTalk requires ``title`` (its notification preview)."""
        return self.send(
            send_request(
                account,
                markdown_message(content, title, dialect),
                recipients=recipients,
                labels=labels,
                options=options,
                idempotency_key=idempotency_key,
            ),
            timeout=timeout,
        )

    def send_card(
        self,
        account: str,
        card: pb.TextCard | pb.ActionCard,
        *,
        recipients: pb.Recipients | None = None,
        labels: Mapping[str, str] | None = None,
        options: pb.SendOptions | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> pb.SendResponse:
        """A card: ``pb.TextCard`` for WeCom applications, ``pb.ActionCard`` for DingTalk."""
        return self.send(
            send_request(
                account,
                card_message(card),
                recipients=recipients,
                labels=labels,
                options=options,
                idempotency_key=idempotency_key,
            ),
            timeout=timeout,
        )

    def send_image(
        self,
        account: str,
        image: ImageSource | None = None,
        *,
        media_id: str | None = None,
        recipients: pb.Recipients | None = None,
        labels: Mapping[str, str] | None = None,
        options: pb.SendOptions | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> pb.SendResponse:
        """A picture: JPG/PNG bytes, a path to read them from, or a ``media_id`` from an upload."""
        data = read_image(image) if image is not None else None
        return self.send(
            send_request(
                account,
                image_message(data, media_id),
                recipients=recipients,
                labels=labels,
                options=options,
                idempotency_key=idempotency_key,
            ),
            timeout=timeout,
        )

    def upload_file(
        self,
        account: str,
        path: PathLike,
        type: pb.MediaType.ValueType | str,  # noqa: A002 - the proto's name for it
        *,
        filename: str | None = None,
        content_type: str | None = None,
        chunk_size: int | None = None,
        timeout: float | None = None,
    ) -> pb.UploadMediaResponse:
        """Uploads a file from disk in chunks; see AsyncNotifyClient.upload_file.

        grpc's sync API reports the gateway's status when it ends the stream early, so the
        grpc.aio workaround (grpc/grpc#36066) is not needed here.
        """
        file = Path(path)
        info = media_info(account, file, type, filename=filename, content_type=content_type)
        size = chunk_size or self.chunk_size
        if size <= 0:
            raise ValueError("chunk_size must be > 0")
        deadline = timeout or self.upload_timeout
        return self._with_retries(
            "UploadMedia",
            lambda: cast(
                pb.UploadMediaResponse,
                self._upload(file_parts(info, file, size), timeout=deadline, metadata=self._metadata),
            ),
            None,
        )

    # -- machinery ---------------------------------------------------------------------------------

    def _list_page(self, request: pb.ListMessagesRequest, timeout: float | None) -> pb.ListMessagesResponse:
        deadline = timeout or self.timeout
        return self._with_retries(
            "ListMessages",
            lambda: cast(
                pb.ListMessagesResponse, self._list(request, timeout=deadline, metadata=self._metadata)
            ),
            None,
        )

    def _with_retries(self, method: str, attempt: Callable[[], T], idempotency_key: str | None) -> T:
        started = time.monotonic()
        number = 0
        while True:
            number += 1
            try:
                return attempt()
            except grpc.RpcError as exc:
                error = error_from_rpc_error(exc)
                delay = self.retry.delay_before_retry(error, number, time.monotonic() - started)
                if delay is None:
                    raise error from exc
            if self.retry.on_retry is not None:
                self.retry.on_retry(RetryEvent(method, number, delay, error, idempotency_key))
            time.sleep(delay)
