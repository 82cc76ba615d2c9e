"""Bad requests get the right status with field violations, and never reach the vendor."""

from __future__ import annotations

import math
from typing import Any

import grpc
import pytest

from generated.notify.v1 import notification_service_pb2 as pb
from tests.conftest import Gateway
from tests.rich_status import RichError, rich_error


async def refused(gateway: Gateway, request: pb.SendRequest) -> RichError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.stub.Send(request)
    assert gateway.sandbox.received() == [], "a refused request must not reach the vendor"
    return rich_error(caught.value)


async def test_empty_request_names_account_and_message(gateway: Gateway) -> None:
    error = await refused(gateway, pb.SendRequest())
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert set(error.violations) == {"account", "message"}


async def test_unknown_account_is_not_found(gateway: Gateway) -> None:
    error = await refused(
        gateway, pb.SendRequest(account="nobody", message=pb.Message(text=pb.Text(content="x")))
    )
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert "nobody" in error.message
    assert error.error_info is not None and error.error_info.reason == "ACCOUNT_NOT_FOUND"


@pytest.mark.parametrize("account", ["team-wecom", "ops-dingtalk"])
async def test_missing_text_content(gateway: Gateway, account: str) -> None:
    error = await refused(gateway, pb.SendRequest(account=account, message=pb.Message(text=pb.Text())))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "message.text.content" in error.violations


async def test_text_over_the_vendor_byte_limit(gateway: Gateway) -> None:
    content = "警" * 683  # 2049 bytes in UTF-8: over 2048 though only 683 characters
    error = await refused(
        gateway, pb.SendRequest(account="team-wecom", message=pb.Message(text=pb.Text(content=content)))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "2049 bytes" in error.violations["message.text.content"]
    assert "2048" in error.violations["message.text.content"]


async def test_markdown_over_4096_bytes(gateway: Gateway) -> None:
    message = pb.Message(markdown=pb.Markdown(content="x" * 4097))
    error = await refused(gateway, pb.SendRequest(account="team-wecom", message=message))
    assert "message.markdown.content" in error.violations


async def test_nine_news_articles(gateway: Gateway) -> None:
    articles = [pb.Article(title=f"t{i}", url=f"https://example.com/{i}") for i in range(9)]
    error = await refused(
        gateway, pb.SendRequest(account="team-wecom", message=pb.Message(news=pb.News(articles=articles)))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "9 entries" in error.violations["message.news.articles"]


async def test_every_violation_is_reported_at_once(gateway: Gateway) -> None:
    articles = [pb.Article(title="", url="")] * 9
    error = await refused(
        gateway, pb.SendRequest(account="team-wecom", message=pb.Message(news=pb.News(articles=articles)))
    )
    assert "message.news.articles" in error.violations
    assert "message.news.articles[8].title" in error.violations
    assert "message.news.articles[8].url" in error.violations


async def test_dingtalk_body_over_20000_bytes(gateway: Gateway) -> None:
    message = pb.Message(markdown=pb.Markdown(title="big", content="x" * 20_001))
    error = await refused(gateway, pb.SendRequest(account="ops-dingtalk", message=message))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "20000" in error.violations["message"]


@pytest.mark.parametrize(
    ("account", "message", "kind"),
    [
        ("team-wecom", pb.Message(link=pb.Link(title="t", text="x", url="https://e.com")), "link"),
        (
            "team-wecom",
            pb.Message(text_card=pb.TextCard(title="t", description="d", url="https://e.com")),
            "text_card",
        ),
        (
            "ops-dingtalk",
            pb.Message(news=pb.News(articles=[pb.Article(title="t", url="https://e.com")])),
            "news",
        ),
        ("ops-dingtalk", pb.Message(image=pb.Image(media_id="m")), "image"),
    ],
)
async def test_a_kind_the_channel_does_not_support_names_the_kinds_it_does(
    gateway: Gateway, account: str, message: pb.Message, kind: str
) -> None:
    error = await refused(gateway, pb.SendRequest(account=account, message=message))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert kind in error.message and "it supports:" in error.message
    assert error.error_info is not None and error.error_info.reason == "MESSAGE_KIND_UNSUPPORTED"
    assert "text" in error.error_info.metadata["supported"]


@pytest.mark.parametrize("account", ["team-wecom", "ops-dingtalk"])
async def test_robots_cannot_address_departments_or_tags(gateway: Gateway, account: str) -> None:
    request = pb.SendRequest(
        account=account,
        message=pb.Message(text=pb.Text(content="hi")),
        recipients=pb.Recipients(department_ids=["2"], tag_ids=["7"]),
    )
    error = await refused(gateway, request)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {"recipients.department_ids", "recipients.tag_ids"} <= set(error.violations)


async def test_wecom_robot_mentions_only_in_text(gateway: Gateway) -> None:
    request = pb.SendRequest(
        account="team-wecom",
        message=pb.Message(markdown=pb.Markdown(content="hi")),
        recipients=pb.Recipients(user_ids=["zhangsan"]),
    )
    error = await refused(gateway, request)
    assert "recipients" in error.violations


async def test_wecom_robot_image_must_be_bytes_of_a_jpg_or_png(gateway: Gateway) -> None:
    by_id = await refused(
        gateway, pb.SendRequest(account="team-wecom", message=pb.Message(image=pb.Image(media_id="m1")))
    )
    assert "message.image.data" in by_id.violations
    gif = await refused(
        gateway, pb.SendRequest(account="team-wecom", message=pb.Message(image=pb.Image(data=b"GIF89a....")))
    )
    assert "JPG or PNG" in gif.violations["message.image.data"]


async def test_action_card_needs_a_button(gateway: Gateway) -> None:
    message = pb.Message(action_card=pb.ActionCard(title="t", markdown="m"))
    error = await refused(gateway, pb.SendRequest(account="ops-dingtalk", message=message))
    assert "message.action_card.buttons" in error.violations


async def test_dingtalk_markdown_needs_a_title(gateway: Gateway) -> None:
    message = pb.Message(markdown=pb.Markdown(content="body"))
    error = await refused(gateway, pb.SendRequest(account="ops-dingtalk", message=message))
    assert "message.markdown.title" in error.violations


async def test_template_card_type_must_be_one_the_robot_takes(gateway: Gateway) -> None:
    message = pb.Message(template_card=pb.TemplateCard())
    message.template_card.card.update({"card_type": "vote_interaction"})
    error = await refused(gateway, pb.SendRequest(account="team-wecom", message=message))
    assert "message.template_card.card.card_type" in error.violations


def template_card(card: dict[str, Any]) -> pb.Message:
    message = pb.Message(template_card=pb.TemplateCard())
    message.template_card.card.update(card)
    return message


CARD_ACCOUNTS = [("team-wecom", pb.Recipients()), ("corp-app", pb.Recipients(user_ids=["zhangsan"]))]


@pytest.mark.parametrize(("account", "recipients"), CARD_ACCOUNTS, ids=[a for a, _ in CARD_ACCOUNTS])
@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
async def test_template_card_numbers_must_be_finite(
    gateway: Gateway, account: str, recipients: pb.Recipients, number: float
) -> None:
    # JSON has no NaN or Infinity: the card could never reach the vendor as it is.
    message = template_card(
        {
            "card_type": "text_notice",
            "card_action": {"type": 1, "url": "https://example.com/i"},
            "jump_list": [{"type": 1, "url": "https://example.com/i", "title": "Open"}, {"type": number}],
        }
    )
    error = await refused(gateway, pb.SendRequest(account=account, recipients=recipients, message=message))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a finite number" in error.violations["message.template_card.card.jump_list[1].type"]


@pytest.mark.parametrize(("account", "recipients"), CARD_ACCOUNTS, ids=[a for a, _ in CARD_ACCOUNTS])
@pytest.mark.parametrize("card_type", [["text_notice"], {"name": "text_notice"}, 1, True, None], ids=repr)
async def test_template_card_type_must_be_a_string(
    gateway: Gateway, account: str, recipients: pb.Recipients, card_type: object
) -> None:
    message = template_card({"card_type": card_type, "card_action": {"type": 1, "url": "https://x.test"}})
    error = await refused(gateway, pb.SendRequest(account=account, recipients=recipients, message=message))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "message.template_card.card.card_type" in error.violations


@pytest.mark.parametrize("char", ["x", "警"])
async def test_an_error_that_echoes_a_huge_value_still_reaches_the_caller(
    gateway: Gateway, char: str
) -> None:
    # The unknown account is named in the message; 70,000 characters of it would make trailers no
    # client accepts (RESOURCE_EXHAUSTED "received metadata size exceeds hard limit").
    account = char * 70_000
    error = await refused(
        gateway, pb.SendRequest(account=account, message=pb.Message(text=pb.Text(content="x")))
    )
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.message.endswith("…") and len(error.message.encode()) <= 512
