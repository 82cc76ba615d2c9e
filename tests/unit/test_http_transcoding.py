"""HTTP -> request message, by the routes the proto's google.api.http rules declare (gateway.http)."""

from __future__ import annotations

import grpc
import pytest
from openapi_spec_validator import validate

from gateway.errors import InvalidArgument
from gateway.http.metadata import deadline
from gateway.http.openapi import openapi_document
from gateway.http.routes import Matched, Router, Unmatched
from gateway.http.status_codes import http_status
from gateway.http.transcoding import apply_idempotency_key, request_message
from generated.notify.v1 import notification_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["NotificationService"]
ROUTER = Router(SERVICE)
ROUTES = {route.rpc.name: route for route in ROUTER.routes}


def violation(call: object) -> tuple[str, str]:
    assert isinstance(call, InvalidArgument)
    (found,) = call.violations
    return found.field, found.description


def refused(*args: object) -> tuple[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        request_message(*args)  # type: ignore[arg-type]
    return violation(caught.value)


def test_every_rpc_has_a_route_from_its_http_rule() -> None:
    assert {(r.http_method, r.template) for r in ROUTER.routes} == {
        ("POST", "/v1/messages:send"),
        ("POST", "/v1/messages/{message_id}:recall"),
        ("POST", "/v1/media:upload"),
        ("GET", "/v1/messages/{message_id}"),
        ("GET", "/v1/messages"),
        ("GET", "/v1/messages/{message_id}:watch"),
    }


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/v1/messages:send", ("Send", {})),
        ("GET", "/v1/messages/01ABC", ("GetMessage", {"message_id": "01ABC"})),
        ("POST", "/v1/messages/01ABC:recall", ("Recall", {"message_id": "01ABC"})),
        ("GET", "/v1/messages/01ABC:watch", ("WatchMessage", {"message_id": "01ABC"})),
        ("GET", "/v1/messages/a%2Fb", ("GetMessage", {"message_id": "a/b"})),
        ("GET", "/v1/messages", ("ListMessages", {})),
    ],
)
def test_a_path_names_its_rpc_and_binds_its_variables(
    method: str, path: str, expected: tuple[str, dict[str, str]]
) -> None:
    matched = ROUTER.match(method, path)
    assert isinstance(matched, Matched)
    assert (matched.route.rpc.name, matched.path_params) == expected


def test_a_known_path_with_another_method_lists_the_allowed_ones_and_an_unknown_path_none() -> None:
    assert ROUTER.match("GET", "/v1/messages/01ABC:recall") == Unmatched(("POST",))
    assert ROUTER.match("DELETE", "/v1/messages/01ABC") == Unmatched(("GET",))
    assert ROUTER.match("GET", "/v2/messages") == Unmatched(())


def test_the_body_path_and_query_fill_one_request() -> None:
    body = b'{"account": "ops", "idempotencyKey": "k1", "message": {"text": {"content": "hi"}}}'
    send = request_message(ROUTES["Send"], pb.SendRequest, {}, [], body)
    assert send == pb.SendRequest(
        account="ops", idempotency_key="k1", message=pb.Message(text=pb.Text(content="hi"))
    )

    recall = request_message(
        ROUTES["Recall"], pb.RecallRequest, {"message_id": "from-path"}, [], b'{"messageId": "x"}'
    )
    assert recall.message_id == "from-path", "the path wins over the body"

    query = [
        ("pageSize", "5"),
        ("states", "MESSAGE_STATE_SENT"),
        ("states", "4"),
        ("labels[team]", "payments"),
    ]
    listed = request_message(ROUTES["ListMessages"], pb.ListMessagesRequest, {}, query, None)
    assert listed.page_size == 5 and list(listed.states) == [pb.MESSAGE_STATE_SENT, pb.MESSAGE_STATE_FAILED]
    assert dict(listed.labels) == {"team": "payments"}
    timed = request_message(
        ROUTES["ListMessages"], pb.ListMessagesRequest, {}, [("start_time", "2026-12-01T00:00:00Z")], None
    )
    assert timed.start_time.ToJsonString() == "2026-12-01T00:00:00Z"

    info = [("info.account", "corp-app"), ("info.type", "MEDIA_TYPE_FILE"), ("info.size", "12")]
    upload = request_message(ROUTES["UploadMedia"], pb.UploadMediaRequest, {}, info, None)
    assert upload.info == pb.MediaInfo(account="corp-app", type=pb.MEDIA_TYPE_FILE, size=12)


def test_what_does_not_fit_is_refused_naming_the_field() -> None:
    send, listing = ROUTES["Send"], ROUTES["ListMessages"]
    assert refused(send, pb.SendRequest, {}, [], b"{nope")[0] == "body"
    assert refused(send, pb.SendRequest, {}, [], b"[]") == ("body", "must be a JSON object")
    assert refused(send, pb.SendRequest, {}, [], b'{"acount": "x"}') == ("acount", "no such field")
    assert (
        refused(send, pb.SendRequest, {}, [], b'{"message": {"text": {"content": 5}}}')[0]
        == "message.text.content"
    )
    assert refused(send, pb.SendRequest, {}, [], b'{"options": {"safe": "NOPE"}}')[0] == "options.safe"
    assert refused(send, pb.SendRequest, {}, [("account", "x")], b"{}")[0] == "account"
    assert refused(listing, pb.ListMessagesRequest, {}, [("pageSize", "many")], None)[0] == "page_size"
    assert refused(listing, pb.ListMessagesRequest, {}, [("nope", "1")], None) == ("nope", "no such field")
    assert (
        refused(listing, pb.ListMessagesRequest, {}, [("page_size", "1"), ("page_size", "2")], None)[0]
        == "page_size"
    )
    assert refused(ROUTES["UploadMedia"], pb.UploadMediaRequest, {}, [("chunk", "x")], None)[0] == "chunk"


def test_the_idempotency_key_header_fills_an_empty_key_and_must_agree_with_a_set_one() -> None:
    request = pb.SendRequest()
    apply_idempotency_key(request, "k1")
    assert request.idempotency_key == "k1"
    apply_idempotency_key(request, "k1")
    with pytest.raises(InvalidArgument) as caught:
        apply_idempotency_key(request, "k2")
    assert violation(caught.value)[0] == "idempotency_key"
    recall = pb.RecallRequest()
    apply_idempotency_key(recall, "k1")  # no such field: nothing to fill
    assert recall == pb.RecallRequest()


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.OK, 200),
        (grpc.StatusCode.CANCELLED, 499),
        (grpc.StatusCode.UNKNOWN, 500),
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.OUT_OF_RANGE, 400),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DATA_LOSS, 500),
    ],
)
def test_grpc_codes_map_to_http_as_grpc_gateway_maps_them(code: grpc.StatusCode, status: int) -> None:
    assert http_status(code) == status == http_status(code.value[0])


def test_a_grpc_timeout_header_shortens_the_deadline_never_lengthens_it() -> None:
    assert deadline({}, 30.0) == 30.0
    assert deadline({"grpc-timeout": "5S"}, 30.0) == 5.0
    assert deadline({"grpc-timeout": "250m"}, 30.0) == 0.25
    assert deadline({"grpc-timeout": "2H"}, 30.0) == 30.0
    with pytest.raises(InvalidArgument):
        deadline({"grpc-timeout": "soon"}, 30.0)


def test_the_generated_openapi_document_is_valid_openapi_3() -> None:
    document = openapi_document(SERVICE)
    validate(document)
    assert document["openapi"].startswith("3.")
    # Described with the proto's own comments, kept by scripts/generate.py.
    send = document["paths"]["/v1/messages:send"]["post"]
    assert send["description"].startswith("Send delivers one message")
    account = document["components"]["schemas"]["notify.v1.SendRequest"]["properties"]["account"]
    assert account["description"].startswith("The configured account to send through")
