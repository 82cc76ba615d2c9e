"""Emulates the WeCom application message API (docs/vendors.md, WeCom application messages).

`GET /cgi-bin/gettoken?corpid=&corpsecret=` issues access tokens; every other call carries
`?access_token=`: `POST /cgi-bin/message/send`, `POST /cgi-bin/message/recall` and
`POST /cgi-bin/media/upload?type=`. Calls are recorded under the app the token (or, for
gettoken, the corpid and secret) belongs to, and never with the secret or the token.

Where the doc gives no code, recall answers 40035 with an errmsg saying why: "invalid msgid"
(unknown), "msgid already recalled", "recall time limit exceeded" (over 24 hours).
"""

from __future__ import annotations

import secrets

from aiohttp import web

from gateway.sandbox.access_tokens import TokenState
from gateway.sandbox.answers import OK, Answer, Rejection
from gateway.sandbox.applications import RECALL_WINDOW, SentMessage, WecomApp
from gateway.sandbox.channels import WECOM_APP
from gateway.sandbox.endpoint import Call, Delivery, Handle, serve_call
from gateway.sandbox.media_formats import WECOM_APP_MEDIA
from gateway.sandbox.media_upload import receive_media
from gateway.sandbox.paths import WECOM_APP_RECALL, WECOM_APP_SEND, WECOM_APP_UPLOAD, WECOM_GETTOKEN
from gateway.sandbox.recording import GETTOKEN, RECALL, UPLOAD
from gateway.sandbox.state import SandboxState
from gateway.sandbox.wecom_app_payload import check_wecom_app_message
from gateway.sandbox.wecom_app_recipients import reach
from gateway.sandbox.wecom_errmsg import wecom_errmsg


def routes(state: SandboxState) -> list[web.RouteDef]:
    """The WeCom application API's HTTP routes, bound to `state`."""
    book = state.wecom_apps

    def authorize(request: web.Request) -> WecomApp:
        """The app whose valid token the request carries, else the vendor's token errcode."""
        value = request.query.get("access_token", "")
        if not value:
            raise Rejection(41001, "access_token missing")
        token = book.tokens.find(value)
        token_state = token.state(state.clock.now()) if token is not None else TokenState.REVOKED
        if token is None or token_state is TokenState.REVOKED:
            raise Rejection(40014, "invalid access_token")
        if token_state is TokenState.EXPIRED:
            raise Rejection(42001, "access_token expired")
        return book.get(token.owner)

    async def serve(
        request: web.Request, call: Call, handle: Handle, name: str | None = None
    ) -> web.Response:
        if name is None:
            name = book.tokens.owner_of(request.query.get("access_token", ""))
        return await serve_call(
            request, state=state, channel=WECOM_APP, name=name, call=call, handle=handle, style=wecom_errmsg
        )

    async def gettoken(request: web.Request) -> web.Response:
        corp_id = request.query.get("corpid", "")
        secret = request.query.get("corpsecret", "")

        def credentialed() -> WecomApp | None:
            return next((app for app in book if (app.corp_id, app.corp_secret) == (corp_id, secret)), None)

        def caller() -> str | None:
            """Whom to record the call under: the app, or the corp's only app when the secret is wrong."""
            app = credentialed()
            if app is not None:
                return app.name
            in_corp = [app.name for app in book if app.corp_id == corp_id]
            return in_corp[0] if len(in_corp) == 1 else None

        async def handle(_: Call) -> Answer:
            if not any(app.corp_id == corp_id for app in book):
                raise Rejection(40013, "invalid corpid")
            app = credentialed()
            if app is None:
                raise Rejection(40001, "invalid credential, access_token is invalid or not latest")
            now = state.clock.now()
            token = book.tokens.issue(app.name, now, state.token_lifetime)
            return Answer(0, "ok", fields={"access_token": token.value, "expires_in": token.expires_in(now)})

        # Recorded with an empty body: the query holds the secret.
        return await serve(request, Call(GETTOKEN), handle, caller())

    async def send(request: web.Request) -> web.Response:
        delivery = Delivery.parse(await request.read())

        async def handle(call: Call) -> Answer:
            app = authorize(request)
            body = delivery.body
            if body is None:
                raise Rejection(47001, "data format error: the body must be a UTF-8 JSON object")
            _check_agent_id(body, app)
            reached = reach(body, app)
            now = state.clock.now()
            call.body = check_wecom_app_message(
                body, lambda media_id: app.media.usable(media_id, now) is not None
            )
            # Checked last so that only accepted messages count. A message is refused whole if any
            # member it reaches is over 30 a minute (simpler than the vendor's per-member drop).
            windows = [app.member_rate(user) for user in reached.users]
            if not all(window.has_room(now) for window in windows):
                raise Rejection(45009, "api freq out of limit")
            for window in windows:
                window.try_acquire(now)
            msgid = secrets.token_urlsafe(24)
            app.sent[msgid] = SentMessage(at=now)
            return Answer(
                0,
                "ok",
                fields={**reached.fields(), "msgid": msgid, "response_code": secrets.token_urlsafe(32)},
            )

        call = Call(delivery.msgtype, delivery.body if delivery.body is not None else {})
        return await serve(request, call, handle)

    async def recall(request: web.Request) -> web.Response:
        delivery = Delivery.parse(await request.read())

        async def handle(_: Call) -> Answer:
            app = authorize(request)
            if delivery.body is None:
                raise Rejection(47001, "data format error: the body must be a UTF-8 JSON object")
            msgid = delivery.body.get("msgid")
            sent = app.sent.get(msgid) if isinstance(msgid, str) else None
            if sent is None:
                raise Rejection(40035, "invalid msgid")
            if sent.recalled:
                raise Rejection(40035, "msgid already recalled")
            if state.clock.now() - sent.at > RECALL_WINDOW:
                raise Rejection(40035, "recall time limit exceeded")
            sent.recalled = True
            app.recalled.append(str(msgid))
            return OK

        return await serve(request, Call(RECALL, delivery.body if delivery.body is not None else {}), handle)

    async def upload(request: web.Request) -> web.Response:
        async def handle(call: Call) -> Answer:
            app = authorize(request)
            now = state.clock.now()
            record = await receive_media(request, call, WECOM_APP_MEDIA, now, state.media_content.keep)
            media_id = app.media.add(record)
            # created_at is a unix-seconds *string* (docs/vendors.md, WeCom application messages).
            fields = {"type": record.type, "media_id": media_id, "created_at": str(int(now))}
            return Answer(0, "ok", fields=fields)

        return await serve(request, Call(UPLOAD, {"type": request.query.get("type", "")}), handle)

    return [
        web.get(WECOM_GETTOKEN, gettoken),
        web.post(WECOM_APP_SEND, send),
        web.post(WECOM_APP_RECALL, recall),
        web.post(WECOM_APP_UPLOAD, upload),
    ]


def _check_agent_id(body: dict[str, object], app: WecomApp) -> None:
    agent_id = body.get("agentid")
    if agent_id is None or agent_id == "":
        raise Rejection(41011, "missing agentid")
    # The vendor takes the id as a number or a string of digits; anything else is no agent.
    if (
        isinstance(agent_id, bool)
        or not isinstance(agent_id, int | str)
        or str(agent_id) != str(app.agent_id)
    ):
        raise Rejection(40056, "invalid agentid")
