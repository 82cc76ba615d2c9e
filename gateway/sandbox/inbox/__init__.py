"""The sandbox inbox: a web page at the sandbox's root showing every message as the vendor's
client would, live, with each account's token, rate-window and fault state and buttons to
break them.

`view.install` adds it to the sandbox app; `cards` turns a journal entry into its card, with
`wecom` and `dingtalk` rendering the messages, `markdown` each vendor's markdown subset and
`markup` the escaping every renderer goes through; `accounts` is the side panel's state and
`events` the Server-Sent Events stream.
"""

from gateway.sandbox.inbox.cards import CardOptions
from gateway.sandbox.inbox.view import install

__all__ = ["CardOptions", "install"]
