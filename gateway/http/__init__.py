"""The HTTP/JSON face of notify.v1.NotificationService (AIP-127 transcoding).

A reverse proxy, as grpc-gateway is: each HTTP request is transcoded into the RPC its
``google.api.http`` rule names and sent to the gateway's own gRPC server over an internal channel,
so authentication, the chains, idempotency, rate limits, tracing and the access log are the gRPC
ones. Nothing here knows what a message is; only how HTTP maps onto the proto.
"""

from gateway.http.face import HttpFace

__all__ = ["HttpFace"]
