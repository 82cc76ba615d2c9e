"""Apprise: the same messages with its DingTalk and WeCom-bot plugins, as a library user sends them.

One `Apprise` object holding both URLs (`dingtalk://TOKEN/`, `wecombot://KEY`, each tagged), and
`concurrency` application threads calling `notify(body, tag=...)`, the way a threaded service
uses the library. Everything is Apprise's default except two things:

- Neither plugin takes a custom host: the vendor URL is the class attribute `notify_url`
  (https://oapi.dingtalk.com/..., https://qyapi.weixin.qq.com/...). It is pointed at the
  sandbox here, in this process only; that is the one change a user would not make.
- The throttle (`request_rate_per_sec`) is set to 0 on both plugins; it is already 0 in
  Apprise 2.x, and is set so an older or newer default cannot slow the run down.

The DingTalk robot is unsigned: Apprise URL-encodes the signature and then hands it to requests
as a query parameter, which encodes it again, so the sandbox (like the vendor's documented
check) answers 310000 "sign not match" to every signed Apprise message. Apprise reports those
as sent: it looks at the HTTP status only, never at errcode, which is why the runner checks
the sandbox's count of accepted messages rather than Apprise's answer.

A WeCom *app* has no Apprise plugin, so Apprise's WeCom messages go to a WeCom group robot
(the gateway scenario sends to a WeCom app, which costs it a token lookup besides).
"""

from __future__ import annotations

import apprise
from apprise.plugins.dingtalk import NotifyDingTalk
from apprise.plugins.wecombot import NotifyWeComBot

from bench.messages import TEXT
from bench.phases import measure_threads
from bench.spec import LoadResult, LoadSpec

TAGS = ("dingtalk", "wecom")


def drive(spec: LoadSpec) -> LoadResult:
    NotifyDingTalk.notify_url = spec.sandbox_url + "/robot/send?access_token={token}"
    NotifyWeComBot.notify_url = spec.sandbox_url + "/cgi-bin/webhook/send?key={key}"
    NotifyDingTalk.request_rate_per_sec = 0
    NotifyWeComBot.request_rate_per_sec = 0

    notifier = apprise.Apprise()
    if not notifier.add(f"dingtalk://{spec.dingtalk_token}/", tag=TAGS[0]):
        raise RuntimeError("Apprise refused the dingtalk:// URL")
    if not notifier.add(f"wecombot://{spec.wecom_key}", tag=TAGS[1]):
        raise RuntimeError("Apprise refused the wecombot:// URL")

    def send(i: int) -> str | None:
        tag = TAGS[i % 2]
        outcome = notifier.notify(body=TEXT, tag=tag)
        return None if outcome else f"{tag}: {outcome!r}"

    return measure_threads(spec, send)
