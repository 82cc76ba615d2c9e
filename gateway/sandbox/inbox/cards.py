"""One journal entry as the inbox shows it: a card with the rendered message, its fate, the raw
request and the vendor's answer, and a link to the gateway trace that sent it.

The card is HTML built on the server (the page's script only inserts it), plus the few facts the
page filters and updates on. Calls that are not messages (gettoken, upload, recall, task
queries) become one-line cards the page hides unless asked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from gateway.sandbox.channels import DINGTALK_ROBOT, DINGTALK_WORK, WECOM_APP, WECOM_ROBOT
from gateway.sandbox.inbox import dingtalk, wecom
from gateway.sandbox.inbox.markup import link, text
from gateway.sandbox.inbox.media_blocks import RenderContext
from gateway.sandbox.recording import CALL_MSGTYPES, RECALL, Received

log = logging.getLogger(__name__)

_RENDERERS: Final[dict[str, dict[str, wecom.Renderer]]] = {
    WECOM_ROBOT: wecom.ROBOT,
    WECOM_APP: wecom.APP,
    DINGTALK_ROBOT: dingtalk.ROBOT,
    DINGTALK_WORK: dingtalk.WORK,
}
_VENDOR: Final = {
    WECOM_ROBOT: "wecom",
    WECOM_APP: "wecom",
    DINGTALK_ROBOT: "dingtalk",
    DINGTALK_WORK: "dingtalk",
}
_CHANNEL_LABELS: Final = {
    WECOM_ROBOT: "WeCom robot",
    WECOM_APP: "WeCom app",
    DINGTALK_ROBOT: "DingTalk robot",
    DINGTALK_WORK: "DingTalk work",
}
_LONG_STRING: Final = 240
"""Longer strings (robot image base64) are cut in the raw view, which is for reading."""


@dataclass(frozen=True)
class CardOptions:
    """How cards link out: `trace_url` is a template with `{trace_id}` (e.g. Jaeger's trace page)."""

    trace_url: str | None = None


def card(
    seq: int, entry: Received, context: RenderContext, options: CardOptions, recalled: Collection[str]
) -> dict[str, Any]:
    """The card for entry `seq`: its HTML and the facts the page filters and updates on.

    `recalled` are the vendor ids (msgid, task_id) the apps withdrew: those messages are marked.
    """
    is_call = entry.msgtype in CALL_MSGTYPES
    vendor_id = _vendor_id(entry)
    body_html = _call_line(entry) if is_call else _render_message(entry, context)
    classes = ["entry", _VENDOR.get(entry.channel, "other"), "call" if is_call else "message"]
    if vendor_id is not None and vendor_id in recalled:
        classes.append("recalled")
    trace = _trace(entry.trace_id, options)
    html = (
        f'<article class="{" ".join(classes)}" id="entry-{seq}">'
        f"{_header(entry, vendor_id, trace)}{body_html}{'' if is_call else _raw(entry)}</article>"
    )
    return {
        "seq": seq,
        "channel": entry.channel,
        "account": entry.robot or "",
        "msgtype": entry.msgtype,
        "kind": "call" if is_call else "message",
        "at": entry.at,
        "vendor_id": vendor_id,
        "recalls": _recalled_id(entry),
        "trace_id": entry.trace_id,
        "search": _search_text(entry),
        "html": html,
    }


def _render_message(entry: Received, context: RenderContext) -> str:
    body = entry.body
    renderers = _RENDERERS.get(entry.channel, {})
    renderer = renderers.get(entry.msgtype)
    if renderer is None:
        kind = text(entry.msgtype or "(none)")
        return f'<div class="bubble unknown">msgtype {kind} is not one this channel takes</div>'
    try:
        shown = renderer(body, context)
    except Exception:  # a malformed message must not take the page down; the raw view still shows it
        log.exception("inbox could not render an entry", extra={"seq": context.seq})
        shown = '<div class="bubble unknown">could not render this message; see the request</div>'
    recipients = ""
    if entry.channel == WECOM_APP:
        recipients = wecom.app_recipients(body)
    elif entry.channel == DINGTALK_WORK:
        recipients = dingtalk.work_recipients(body)
    to = f'<div class="recipients">to {text(recipients)}</div>' if recipients else ""
    return f'<div class="entry-body">{to}{shown}</div>'


def _header(entry: Received, vendor_id: str | None, trace: str) -> str:
    when = datetime.fromtimestamp(entry.at, UTC).isoformat(timespec="milliseconds")
    label = _CHANNEL_LABELS.get(entry.channel, entry.channel)
    vendor = (
        f'<span class="vendor-id" title="vendor message id">{text(vendor_id)}</span>' if vendor_id else ""
    )
    return (
        '<header class="entry-head">'
        f'<span class="badge {_VENDOR.get(entry.channel, "other")}">{text(label)}</span>'
        f'<span class="account">{text(entry.robot or "(unknown credential)")}</span>'
        f'<span class="msgtype">{text(entry.msgtype or "?")}</span>'
        f"{_status(entry)}"
        '<span class="recalled-mark">recalled</span>'
        f'<span class="spacer"></span>{vendor}{trace}'
        f'<time datetime="{when}">{when[11:19]}</time></header>'
    )


def _status(entry: Received) -> str:
    if entry.dropped and entry.errcode is None:
        return '<span class="status bad">dropped before handling</span>'
    if entry.errcode is None:
        return f'<span class="status bad">HTTP {text(entry.http_status)}: {text(entry.errmsg)}</span>'
    suffix = " (answer dropped)" if entry.dropped else ""
    if entry.duplicate:
        return f'<span class="status warn">duplicate msgUuid, not delivered again{suffix}</span>'
    if entry.errcode == 0:
        accepted = "ok" if entry.msgtype in CALL_MSGTYPES else "delivered"
        return f'<span class="status ok">{accepted}{suffix}</span>'
    return f'<span class="status bad">{text(entry.errcode)} {text(entry.errmsg)}{suffix}</span>'


def _trace(trace_id: str | None, options: CardOptions) -> str:
    if trace_id is None:
        return ""
    label = f'<span class="trace-label">trace</span> {text(trace_id[:8])}…'
    if options.trace_url:
        return link(options.trace_url.replace("{trace_id}", trace_id), label, "trace")
    return f'<span class="trace" title="{text(trace_id)}">{label}</span>'


def _call_line(entry: Received) -> str:
    details = ", ".join(f"{key}={value}" for key, value in entry.body.items() if key not in {"sha256"})
    return f'<div class="call-line">{text(details)}</div>' if details else ""


def _raw(entry: Received) -> str:
    answer: dict[str, Any] | str
    if entry.errcode is None:
        answer = f"HTTP {entry.http_status}: {entry.errmsg}" if entry.http_status else entry.errmsg
    else:
        answer = {"errcode": entry.errcode, "errmsg": entry.errmsg, **entry.answer}
    request = json.dumps(_shortened(entry.body), ensure_ascii=False, indent=2)
    shown_answer = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False, indent=2)
    return (
        '<details class="raw"><summary>Request and answer</summary><div class="raw-grid">'
        f'<div><div class="raw-label">request</div><pre>{text(request)}</pre></div>'
        f'<div><div class="raw-label">answer (HTTP {text(entry.http_status or "-")})</div>'
        f"<pre>{text(shown_answer)}</pre></div>"
        "</div></details>"
    )


def _shortened(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _LONG_STRING:
        return f"{value[:_LONG_STRING]}… ({len(value)} characters)"
    if isinstance(value, dict):
        return {key: _shortened(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shortened(item) for item in value]
    return value


def _vendor_id(entry: Received) -> str | None:
    """WeCom's msgid or DingTalk's task_id: what recall takes."""
    for key in ("msgid", "task_id"):
        value = entry.answer.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and value != "":
            return str(value)
    return None


def _recalled_id(entry: Received) -> str | None:
    """The vendor id a successful recall withdrew, so the page can mark that message."""
    if entry.msgtype != RECALL or entry.errcode != 0:
        return None
    value = entry.body.get("msgid", entry.body.get("msg_task_id"))
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def _search_text(entry: Received) -> str:
    return " ".join(
        [entry.robot or "", entry.msgtype, json.dumps(_shortened(entry.body), ensure_ascii=False)]
    ).lower()
