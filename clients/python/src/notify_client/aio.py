"""AsyncNotifyClient: the gateway from asyncio code, on grpc.aio.

Create it inside the running event loop (grpc.aio channels belong to a loop) and close it when
done, or use ``async with``. One client holds one HTTP/2 connection and is safe to share between
tasks: make one per process, not one per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import grpc
import grpc.aio
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
    image_message,
    is_core_internal_error,
    list_messages_request,
    markdown_message,
    media_info,
    next_page,
    read_image,
    send_request,
    text_message,
    with_idempotency_key,
)
from notify_client.errors import InternalError, NotifyError, error_from_rpc_error
from notify_client.retry import RetryEvent, RetryPolicy

T = TypeVar("T")

__all__ = ["AsyncNotifyClient"]


class AsyncNotifyClient:
    """An asyncio client for notify.v1.NotificationService.

    Args:
        address: the gateway, ``host:port``.
        api_key: the tenant's API key (sent as ``authorization: Bearer <key>``); None when the
            gateway runs open (``auth: none``, development only).
        insecure: plaintext, for a gateway on loopback in development. Otherwise TLS, verified with
            ``root_certificates`` (PEM bytes or a path; the system's roots when None).
        certificate_chain, private_key: a client certificate, for a gateway that requires mTLS.
        server_hostname: the name to verify the server certificate against, when it differs
            from the host in ``address``.
        timeout: the default deadline of each Send/Recall/GetMessage/ListMessages attempt, in seconds.
        upload_timeout: the default deadline of each upload attempt.
        watch_timeout: the default deadline of a whole watch_message, in seconds.
        retry: how failed calls are retried (``notify_client.NO_RETRY`` disables it).
        chunk_size: bytes per upload chunk.
        channel_options: extra grpc channel arguments.
    """

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
            self._channel = grpc.aio.insecure_channel(conn.address, options=conn.options)
        else:
            self._channel = grpc.aio.secure_channel(conn.address, conn.credentials, options=conn.options)
        self._metadata = conn.metadata
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self.watch_timeout = watch_timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self.chunk_size = chunk_size
        # The RPCs are bound here rather than through a generated *_pb2_grpc stub, whose
        # version check would pin callers to a grpcio at least as new as the generator's.
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

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- raw calls -------------------------------------------------------------------------------

    async def send(self, request: pb.SendRequest, *, timeout: float | None = None) -> pb.SendResponse:
        """Sends one message, retrying per the RetryPolicy under one idempotency key.

        The request's own ``idempotency_key`` is used when set; otherwise one is generated for this
        call and kept across its retries. A failure raises a NotifyError subclass that carries the
        key (``error.idempotency_key``), so the caller can retry later and still deliver once.

        When the vendor may or may not have delivered (it timed out after the request was
        written), the gateway records the message as MESSAGE_STATE_UNKNOWN and never sends it
        again under that key: the first attempt fails UNAVAILABLE (``error.message_id`` and
        ``error.message_state`` say so) and the retry answers OK with ``duplicate=True`` and
        ``state == pb.MESSAGE_STATE_UNKNOWN``. So check ``state``, not just the absence of an
        error: UNKNOWN means "possibly delivered, never twice". DingTalk robots are the exception
        the gateway can resend safely, since that vendor drops repeats of the same msgUuid.
        """
        keyed = with_idempotency_key(request)
        deadline = timeout or self.timeout

        async def attempt() -> pb.SendResponse:
            return cast(pb.SendResponse, await self._send(keyed, timeout=deadline, metadata=self._metadata))

        try:
            return await self._with_retries("Send", attempt, keyed.idempotency_key)
        except NotifyError as error:
            error.idempotency_key = keyed.idempotency_key
            raise

    async def recall(self, message_id: str, *, timeout: float | None = None) -> pb.RecallResponse:
        """Withdraws a message by the gateway's message_id (app channels within the vendor's window).

        Retried like Send: recalling twice leaves the message recalled, so a repeat is harmless.
        """
        request = pb.RecallRequest(message_id=message_id)
        deadline = timeout or self.timeout

        async def attempt() -> pb.RecallResponse:
            return cast(
                pb.RecallResponse, await self._recall(request, timeout=deadline, metadata=self._metadata)
            )

        return await self._with_retries("Recall", attempt, None)

    async def upload_media(
        self,
        info: pb.MediaInfo,
        chunks: AsyncIterable[bytes] | Iterable[bytes],
        *,
        timeout: float | None = None,
    ) -> pb.UploadMediaResponse:
        """Streams ``info`` then ``chunks``; not retried, since a stream cannot be replayed.

        Prefer ``upload_file``, which can start again from the file and so is retried.
        """

        async def parts() -> AsyncGenerator[pb.UploadMediaRequest, None]:
            yield pb.UploadMediaRequest(info=info)
            if isinstance(chunks, AsyncIterable):
                async for chunk in chunks:
                    yield pb.UploadMediaRequest(chunk=chunk)
            else:
                for chunk in chunks:
                    yield pb.UploadMediaRequest(chunk=chunk)

        try:
            return await self._upload_once(info, parts(), timeout or self.upload_timeout)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc_error(exc) from exc

    # -- message records ---------------------------------------------------------------------------

    async def get_message(self, message_id: str, *, timeout: float | None = None) -> pb.MessageRecord:
        """What the gateway knows of one message: state, vendor attempts, delivery report.

        The way to learn how a Send whose outcome was ambiguous ended, or whether a DingTalk work
        notification was read. Another tenant's message_id raises NotFoundError, as an unknown one
        does. A read, so it is retried per the RetryPolicy like any call that is safe to repeat.
        """
        request = pb.GetMessageRequest(message_id=message_id)
        deadline = timeout or self.timeout

        async def attempt() -> pb.GetMessageResponse:
            return cast(
                pb.GetMessageResponse, await self._get(request, timeout=deadline, metadata=self._metadata)
            )

        return (await self._with_retries("GetMessage", attempt, None)).message

    async def list_messages(
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
        """One page of the tenant's messages, newest first.

        Filters combine: ``account``; ``states`` (any of them, as ``pb.MESSAGE_STATE_SENT`` or a
        name, "sent"); ``labels`` (every one, with these values); ``start_time`` (inclusive) and
        ``end_time`` (exclusive), timezone-aware datetimes. ``page_size`` defaults to the gateway's
        50 and is clamped to 500. Pass ``next_page_token`` back as ``page_token``, with the same
        filter, for the next page; a page may be short and still have one, so stop only when the
        token is empty (``iter_messages`` does all that). Retried per the RetryPolicy.
        """
        request = list_messages_request(
            account=account,
            states=states,
            labels=labels,
            start_time=start_time,
            end_time=end_time,
            page_size=page_size,
            page_token=page_token,
        )
        return await self._list_page(request, timeout)

    async def iter_messages(
        self,
        *,
        account: str | None = None,
        states: Iterable[pb.MessageState.ValueType | str] = (),
        labels: Mapping[str, str] | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> AsyncGenerator[pb.MessageRecord, None]:
        """Every message matching the filter (as list_messages), newest first, page after page.

        Pages are fetched as the iteration reaches them, each with its own deadline (``timeout``)
        and retries, so a long listing is never held to one call's deadline.
        """
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
            page = await self._list_page(request, timeout)
            for record in page.messages:
                yield record
            request = next_page(request, page)

    async def watch_message(
        self, message_id: str, *, timeout: float | None = None
    ) -> AsyncGenerator[pb.MessageRecord, None]:
        """The message's record now, then again at each change, until it reaches a final state.

        ``async for record in client.watch_message(sent.message_id): ...`` ends after the record
        whose ``final`` is true, so a loop that finishes normally has seen the message settle
        (DELIVERED, FAILED, UNKNOWN...). ``timeout`` bounds the whole watch (default
        ``watch_timeout``): when it passes first, DeadlineExceededError is raised, the last record
        yielded being where the message stood. A broken stream is reopened per the RetryPolicy (a
        watch is a read) without yielding the same record twice. To stop early, leave the loop and
        close the generator (``contextlib.aclosing``): that cancels the call on the gateway.
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
                async for response in call:
                    record = cast(pb.WatchMessageResponse, response).message
                    if progress.fresh(record):
                        yield record
                    if record.final:
                        return
                error = progress.ended_early()
            except grpc.aio.AioRpcError as exc:
                error, cause = error_from_rpc_error(exc), exc
            finally:
                call.cancel()
            if error.code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise progress.timed_out() from cause
            delay = progress.delay_after(error)
            if delay is None:
                raise error from cause
            await asyncio.sleep(delay)

    # -- typed helpers -----------------------------------------------------------------------------

    async def send_text(
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
        return await self.send(
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

    async def send_markdown(
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
        return await self.send(
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

    async def send_card(
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
        return await self.send(
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

    async def send_image(
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
        """A picture: JPG/PNG bytes, a path to read them from, or a ``media_id`` from an upload.

        Bytes are converted by the gateway for the channel (base64+md5 for the WeCom robot, an
        upload, cached by content hash, for app channels).
        """
        data = await asyncio.to_thread(read_image, image) if image is not None else None
        return await self.send(
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

    async def upload_file(
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
        """Uploads a file from disk, streamed in chunks (never read whole into memory).

        ``type`` is a MediaType or its name ("image", "voice", "video", "file"); ``filename``
        defaults to the file's name, whose extension the vendor checks. The size is declared
        up front, so an oversized file is refused before any byte is sent. Retried on UNAVAILABLE
        by streaming the file again (the gateway reuses a media_id for bytes it already uploaded).
        """
        file = Path(path)
        info = await asyncio.to_thread(
            media_info, account, file, type, filename=filename, content_type=content_type
        )
        size = chunk_size or self.chunk_size
        if size <= 0:
            raise ValueError("chunk_size must be > 0")
        deadline = timeout or self.upload_timeout

        async def attempt() -> pb.UploadMediaResponse:
            return await self._upload_once(info, _file_parts(info, file, size), deadline)

        return await self._with_retries("UploadMedia", attempt, None)

    # -- machinery ---------------------------------------------------------------------------------

    async def _list_page(
        self, request: pb.ListMessagesRequest, timeout: float | None
    ) -> pb.ListMessagesResponse:
        deadline = timeout or self.timeout

        async def attempt() -> pb.ListMessagesResponse:
            return cast(
                pb.ListMessagesResponse, await self._list(request, timeout=deadline, metadata=self._metadata)
            )

        return await self._with_retries("ListMessages", attempt, None)

    async def _with_retries(
        self, method: str, attempt: Callable[[], Awaitable[T]], idempotency_key: str | None
    ) -> T:
        started = time.monotonic()
        number = 0
        while True:
            number += 1
            try:
                return await attempt()
            except grpc.aio.AioRpcError as exc:
                error = error_from_rpc_error(exc)
                cause: BaseException = exc
            except NotifyError as exc:
                error, cause = exc, exc
            delay = self.retry.delay_before_retry(error, number, time.monotonic() - started)
            if delay is None:
                if error is cause:
                    raise error
                raise error from cause
            if self.retry.on_retry is not None:
                self.retry.on_retry(RetryEvent(method, number, delay, error, idempotency_key))
            await asyncio.sleep(delay)

    async def _upload_once(
        self, info: pb.MediaInfo, parts: AsyncGenerator[pb.UploadMediaRequest, None], timeout: float
    ) -> pb.UploadMediaResponse:
        """One upload stream, with the status grpc.aio loses recovered (grpc/grpc#36066).

        When the gateway refuses an upload early (bad info, unknown account, wrong API key) while
        chunks are still being written, grpc.aio may replace the gateway's status with INTERNAL
        "Internal error from Core", and the real one cannot be read back from that call: neither
        ``call.code()`` nor its trailing metadata has it. Stopping writes once ``call.done()`` does
        not prevent it either (Core closes the stream before Python sees the status). So on that
        signature the client asks again with a stream that cannot race, the info part alone: the
        gateway checks info before any chunk, so it answers with the status it gave the first time.
        If the info passes, the refusal concerned the bytes themselves, and InternalError says so.
        """
        call = self._upload(parts, timeout=timeout, metadata=self._metadata)
        try:
            return cast(pb.UploadMediaResponse, await call)
        except grpc.aio.AioRpcError as exc:
            if not is_core_internal_error(exc.code(), exc.details() or "", exc.trailing_metadata()):
                raise
            verdict = await self._probe_info(info, timeout)
            if verdict is not None:
                raise verdict from exc
            raise InternalError(
                "the gateway ended the upload while its chunks were being sent, and grpc.aio lost "
                "the reason (grpc/grpc#36066); the info part alone is accepted, so the bytes were "
                "refused: was the file changed while it was read?",
                code=grpc.StatusCode.INTERNAL,
            ) from exc
        finally:
            with contextlib.suppress(RuntimeError):  # still running inside grpc's consumer task
                await parts.aclose()

    async def _probe_info(self, info: pb.MediaInfo, timeout: float) -> grpc.aio.AioRpcError | None:
        """The gateway's refusal of ``info`` alone, or None when it accepts the info."""
        attempts = 3  # the probe writes one message, but a refusal at authentication can still race it
        for attempt in range(1, attempts + 1):
            call = self._upload(timeout=min(timeout, 10.0), metadata=self._metadata)
            try:
                with contextlib.suppress(asyncio.InvalidStateError):  # ended before the write
                    await call.write(pb.UploadMediaRequest(info=info))
                    await call.done_writing()
                await call
            except grpc.aio.AioRpcError as exc:
                lost = is_core_internal_error(exc.code(), exc.details() or "", exc.trailing_metadata())
                if lost and attempt < attempts:
                    continue
                return None if _only_chunk_refused(exc) else exc
            return None  # an empty stream accepted: nothing wrong with info
        return None


def _only_chunk_refused(exc: grpc.aio.AioRpcError) -> bool:
    error = error_from_rpc_error(exc)
    return error.code == grpc.StatusCode.INVALID_ARGUMENT and set(error.violations) == {"chunk"}


async def _file_parts(
    info: pb.MediaInfo, path: Path, chunk_size: int
) -> AsyncGenerator[pb.UploadMediaRequest, None]:
    """Info, then the file in chunks, each read in a worker thread so disk I/O never blocks the loop."""
    yield pb.UploadMediaRequest(info=info)
    file = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(file.read, chunk_size):
            yield pb.UploadMediaRequest(chunk=chunk)
    finally:
        file.close()
