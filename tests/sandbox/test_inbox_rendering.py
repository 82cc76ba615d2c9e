"""How the inbox renders a message: each vendor's markdown subset, mentions, and never markup
or scripts from the message itself (a message is untrusted input)."""

from __future__ import annotations

import pytest

from gateway.sandbox.inbox.markdown import dingtalk_markdown, wecom_markdown, wecom_markdown_v2
from gateway.sandbox.inbox.markup import colour, highlight, text, url
from gateway.sandbox.trace_context import trace_id_of


def test_wecom_markdown_colours_only_the_three_vendor_colours() -> None:
    shown = wecom_markdown(
        '<font color="info">ok</font> <font color="red">no</font> <font color=\'warning\'>w</font>'
    )
    assert '<span class="font-info">ok</span>' in shown
    assert '<span class="font-warning">w</span>' in shown
    assert "&lt;font color=&quot;red&quot;&gt;no" in shown


def test_an_unclosed_colour_ends_with_its_paragraph() -> None:
    shown = wecom_markdown('<font color="comment">open\n\nnext </font> stray')
    assert shown.count("<span") == shown.count("</span>")
    assert "next &lt;/font&gt; stray" in shown


def test_wecom_markdown_mentions_and_subset() -> None:
    shown = wecom_markdown("# Title\n**bold** <@zhangsan> `code`\n- not a list\n![img](https://x/y.png)")
    assert "<h1>Title</h1>" in shown
    assert '<span class="mention">@zhangsan</span>' in shown
    assert "<code>code</code>" in shown
    assert "<ul>" not in shown and "<img" not in shown  # lists and images are markdown_v2 only


def test_wecom_markdown_v2_has_tables_and_lists_but_no_colours() -> None:
    shown = wecom_markdown_v2('| a |\n|---|\n| 1 |\n\n- one\n\n<font color="info">x</font>')
    assert "<table>" in shown and "<li>one</li>" in shown
    assert "font-info" not in shown


def test_dingtalk_markdown_highlights_only_the_people_mentioned() -> None:
    shown = dingtalk_markdown("### Hi @13800000001 and @13900000000\n1. one", mentions=["13800000001"])
    assert '<span class="mention">@13800000001</span>' in shown
    assert "@13900000000" in shown and shown.count("mention") == 1
    assert "<ol>" in shown and "<h3>" in shown


@pytest.mark.parametrize("render", [wecom_markdown, wecom_markdown_v2, dingtalk_markdown])
def test_markdown_never_passes_html_or_script_links(render: object) -> None:
    hostile = (
        '<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) <@a"onmouseover=x>'
    )
    shown = render(hostile)  # type: ignore[operator]
    assert "<script" not in shown and "<img" not in shown
    assert "javascript:" not in shown.split("[x](")[0] and 'href="javascript' not in shown
    assert 'onmouseover=x"' not in shown.replace("&quot;", "")


def test_text_highlight_matches_whole_names_only() -> None:
    assert highlight(text("@bob and @bobby"), ["bob"]) == '<span class="mention">@bob</span> and @bobby'
    assert highlight(text("@a<b>"), ["a<b>"]) == '<span class="mention">@a&lt;b&gt;</span>'


def test_only_http_urls_and_hex_colours_reach_attributes() -> None:
    assert url('https://example.com/?a=1&b="2"') == "https://example.com/?a=1&amp;b=&quot;2&quot;"
    assert url("javascript:alert(1)") is None
    assert url("data:text/html,x") is None
    assert colour("FFBBBBBB") == "#BBBBBB"
    assert colour("red;background:url(x)") is None


def test_traceparent_gives_the_trace_id_only_when_valid() -> None:
    assert (
        trace_id_of("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        == "0af7651916cd43dd8448eb211c80319c"
    )
    assert trace_id_of("00-00000000000000000000000000000000-b7ad6b7169203331-01") is None
    assert trace_id_of("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01") is None
    assert trace_id_of("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01") is None
    assert trace_id_of("garbage") is None
    assert trace_id_of(None) is None
