"""The sandbox inbox page in a real browser: every kind of message rendered as the vendor's client
would show it, live updates without a reload, and the buttons that break tokens and inject faults
(issue 14, part 2)."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Locator, Page, expect

from generated.notify.v1 import notification_service_pb2 as pb
from tests.browser.conftest import TRACE_URL, Inbox, screenshot_path
from tests.browser.messages import send, send_every_kind

pytestmark = pytest.mark.asyncio(loop_scope="session")


def card(page: Page, account: str, msgtype: str, shows: str = "") -> Locator:
    found = page.locator(f'article.entry.message[data-account="{account}"]').filter(
        has=page.locator(".msgtype").get_by_text(msgtype, exact=True)
    )
    return found.filter(has_text=shows) if shows else found


async def loaded(image: Locator) -> bool:
    return bool(await image.evaluate("img => img.complete && img.naturalWidth > 0"))


async def test_every_kind_of_message_on_every_channel_is_shown_rendered(inbox: Inbox) -> None:
    page = inbox.page
    sent = await send_every_kind(inbox.gateway.stub, inbox.sandbox.url)

    await expect(page.locator("article.entry.message")).to_have_count(len(sent))
    for message in sent:
        shown = card(page, message.account, message.msgtype, message.shows)
        await expect(shown).to_have_count(1)
        await expect(shown.locator(".status")).to_have_text("delivered")

    # Text with the people it @-mentions highlighted, as the WeCom and DingTalk clients do.
    wecom_text = card(page, "team-wecom", "text")
    await expect(wecom_text.locator(".mention")).to_have_text(["@zhangsan", "@13800000001"])
    ding_text = card(page, "ops-dingtalk", "text")
    await expect(ding_text.locator(".bubble .mention")).to_have_text("@13800000001")
    await expect(card(page, "ops-dingtalk", "markdown").locator(".mention")).to_have_text("@manager01")

    # Markdown in each vendor's subset: headings, coloured text, links, code, tables, lists.
    release = card(page, "team-wecom", "markdown")
    await expect(release.locator("h3")).to_have_text("Release 2.4")
    await expect(release.locator(".font-info")).to_have_text("passed")
    await expect(release.locator(".font-warning")).to_have_text("2 flaky tests")
    await expect(release.locator("a[href='https://example.com/changelog']")).to_have_text("changelog")
    await expect(release.locator("code")).to_have_text("v2.4.0")
    await expect(card(page, "team-wecom", "markdown_v2").locator("table td")).to_have_count(4)
    await expect(card(page, "ops-dingtalk", "markdown").locator(".markdown h4")).to_have_text("Build #812")
    await expect(card(page, "ding-app", "markdown").locator("ol li")).to_have_count(2)

    # Cards with their buttons.
    await expect(
        card(page, "ops-dingtalk", "actionCard", "Approve release").locator(".card-button")
    ).to_have_text(["Review"])
    several = card(page, "ops-dingtalk", "actionCard", "On-call swap")
    await expect(several.locator(".card-buttons.horizontal .card-button")).to_have_text(["Accept", "Decline"])
    await expect(card(page, "ding-app", "action_card").locator(".card-button")).to_have_text(
        ["Accept", "Decline"]
    )
    await expect(card(page, "corp-app", "textcard").locator(".card-button")).to_have_text("Open")
    await expect(card(page, "corp-app", "textcard").locator(".tc-highlight")).to_have_text("CNY 1,280.00")
    await expect(card(page, "team-wecom", "template_card").locator(".card-jump")).to_have_text("Open runbook")
    await expect(card(page, "ding-app", "oa").locator(".oa-head")).to_have_text("Leave approval")

    # Pictures: from the robot's base64 bytes, from uploaded media, and in news and feed cards.
    for account in ("team-wecom", "corp-app", "ding-app"):
        image = card(page, account, "image").locator("img.message-image")
        await expect(image).to_be_visible()
        assert await loaded(image), f"{account}'s image did not load"
    for account, msgtype in (("team-wecom", "news"), ("ops-dingtalk", "feedCard"), ("corp-app", "mpnews")):
        pictures = card(page, account, msgtype).locator("img")
        assert await pictures.count() >= 1
        for index in range(await pictures.count()):
            assert await loaded(pictures.nth(index)), f"{account} {msgtype} picture {index} did not load"

    # Files and voice as attachments that download the uploaded bytes.
    attachment = card(page, "corp-app", "file").locator("a.attachment")
    await expect(attachment.locator(".attachment-name")).to_have_text("handbook.pdf")
    async with page.expect_download() as download:
        await attachment.click()
    assert (await download.value).suggested_filename == "handbook.pdf"

    # The raw request and the vendor's answer, collapsed until asked for.
    raw = card(page, "corp-app", "text").locator("details.raw")
    await expect(raw.locator("pre").first).to_be_hidden()
    await raw.locator("summary").click()
    await expect(raw.locator("pre").first).to_contain_text('"touser": "zhangsan|lisi"')
    await expect(raw.locator("pre").nth(1)).to_contain_text('"msgid"')

    # Each message links to the gateway trace that sent it.
    entry = inbox.state.delivered("wecom_app", "corp-app")[0]
    assert entry.trace_id is not None, "the gateway's vendor call carried no traceparent"
    trace = card(page, "corp-app", "text").locator("a.trace")
    await expect(trace).to_have_attribute("href", TRACE_URL.replace("{trace_id}", entry.trace_id))

    await page.evaluate("window.scrollTo(0, 0)")
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        await page.screenshot(path=screenshot_path(f"inbox-{scheme}"), full_page=True)
        await page.screenshot(path=screenshot_path(f"inbox-{scheme}-top"))


async def test_a_new_message_appears_without_a_reload(inbox: Inbox) -> None:
    page = inbox.page
    await page.evaluate("window.sameDocument = true")
    await expect(page.locator("article.entry")).to_have_count(0)

    await send(inbox.gateway.stub, "team-wecom", pb.Message(text=pb.Text(content="live from the gateway")))

    await expect(card(page, "team-wecom", "text", "live from the gateway")).to_be_visible()
    assert await page.evaluate("window.sameDocument") is True
    await expect(page.locator("#entry-count")).to_have_text("1 messages")


async def test_expire_tokens_makes_the_next_send_fetch_a_token(inbox: Inbox) -> None:
    page = inbox.page
    people = pb.Recipients(user_ids=["zhangsan"])
    account = page.locator('.account-card[data-name="corp-app"]')
    await send(inbox.gateway.stub, "corp-app", pb.Message(text=pb.Text(content="first")), recipients=people)
    await expect(account.locator(".gettoken-calls")).to_have_text("1")
    await expect(account.locator(".token-state")).to_contain_text("valid")

    await account.get_by_role("button", name="Expire tokens").click()
    await expect(account.locator(".token-state")).to_have_text("expired")
    await send(inbox.gateway.stub, "corp-app", pb.Message(text=pb.Text(content="second")), recipients=people)

    await expect(account.locator(".gettoken-calls")).to_have_text("2")
    await expect(account.locator(".token-state")).to_contain_text("valid")
    assert inbox.state.gettoken_calls("corp-app") == 2
    # Newest first: the retry with the new token, above the attempt the vendor refused.
    await expect(card(page, "corp-app", "text", "second").locator(".status")).to_have_text(
        ["delivered", re.compile(r"^42001 access_token expired")]
    )


async def test_a_fault_injected_from_the_page_fails_the_next_send(inbox: Inbox) -> None:
    page = inbox.page
    account = page.locator('.account-card[data-name="team-wecom"]')
    await account.locator("select.fault-kind").select_option("http503")
    await account.get_by_role("button", name="Inject once").click()
    await expect(account.locator(".faults")).to_have_text("HTTP 503")
    assert len(inbox.state.faults.pending("wecom_robot", "team-wecom")) == 1

    await send(inbox.gateway.stub, "team-wecom", pb.Message(text=pb.Text(content="after the outage")))

    # The gateway retried past the 503: the page shows the refused attempt and the delivery.
    await expect(card(page, "team-wecom", "text").locator(".status")).to_have_text(
        ["delivered", "HTTP 503: 503 Service Unavailable"]
    )
    await expect(account.locator(".faults")).to_have_text("none")


async def test_a_recalled_message_is_marked_recalled(inbox: Inbox) -> None:
    page = inbox.page
    sent = await send(
        inbox.gateway.stub,
        "corp-app",
        pb.Message(text=pb.Text(content="wrong channel, sorry")),
        recipients=pb.Recipients(user_ids=["lisi"]),
    )
    shown = card(page, "corp-app", "text", "wrong channel")
    await expect(shown).not_to_have_class(re.compile(r"\brecalled\b"))

    await inbox.gateway.stub.Recall(pb.RecallRequest(message_id=sent.message_id), timeout=10)

    await expect(shown).to_have_class(re.compile(r"\brecalled\b"))
    await expect(shown.locator(".recalled-mark")).to_be_visible()
    await page.reload()
    await expect(card(page, "corp-app", "text", "wrong channel").locator(".recalled-mark")).to_be_visible()


async def test_filters_by_channel_account_and_text_and_clear_empties_the_inbox(inbox: Inbox) -> None:
    page = inbox.page
    stub = inbox.gateway.stub
    await send(stub, "team-wecom", pb.Message(text=pb.Text(content="alpha from wecom")))
    await send(stub, "ops-dingtalk", pb.Message(text=pb.Text(content="beta from signed robot")))
    await send(stub, "plain-dingtalk", pb.Message(text=pb.Text(content="gamma from plain robot")))
    messages = page.locator("article.entry.message:visible")
    await expect(messages).to_have_count(3)

    await page.locator("#filter-channel").select_option("dingtalk_robot")
    await expect(messages).to_have_count(2)
    await page.locator("#filter-account").select_option("plain-dingtalk")
    await expect(messages).to_have_count(1)
    await expect(messages).to_contain_text("gamma from plain robot")
    await page.locator("#filter-account").select_option("")
    await page.locator("#filter-text").fill("beta")
    await expect(messages).to_have_count(1)
    await expect(messages).to_contain_text("beta from signed robot")

    await page.locator("#filter-channel").select_option("")
    await page.locator("#filter-text").fill("")
    await page.get_by_role("button", name="Clear inbox").click()
    await expect(page.locator("article.entry")).to_have_count(0)
    await expect(page.locator("#empty")).to_be_visible()
    assert inbox.state.received() == []


async def test_message_content_cannot_add_markup_or_run_scripts(inbox: Inbox) -> None:
    page = inbox.page
    hostile = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    await send(inbox.gateway.stub, "team-wecom", pb.Message(text=pb.Text(content=hostile)))
    await send(
        inbox.gateway.stub,
        "ops-dingtalk",
        pb.Message(markdown=pb.Markdown(title="x", content=f"[click](javascript:window.pwned=3) {hostile}")),
    )

    wecom_card = card(page, "team-wecom", "text")
    await expect(wecom_card.locator(".bubble")).to_contain_text("<script>window.pwned=2</script>")
    ding_card = card(page, "ops-dingtalk", "markdown")
    await expect(ding_card.locator(".bubble")).to_contain_text("<img src=x")
    assert await page.locator(".entry-body img, .entry-body script").count() == 0
    assert await ding_card.locator("a[href^='javascript']").count() == 0
    assert await page.evaluate("window.pwned") is None


async def test_the_theme_toggle_switches_to_dark_and_is_remembered(inbox: Inbox) -> None:
    page = inbox.page
    background = "getComputedStyle(document.body).backgroundColor"
    light = await page.evaluate(background)

    await page.get_by_role("button", name="Toggle dark mode").click()
    await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    dark = await page.evaluate(background)
    await page.reload()

    await expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert await page.evaluate(background) == dark != light
