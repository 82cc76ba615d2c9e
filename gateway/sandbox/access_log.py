"""An aiohttp access log that never writes a query string.

Robot credentials travel in the query (`?key=`, `?access_token=`, `&sign=`), and aiohttp's
default access log line includes the full request target, so it would write them to the log
(docs/vendors.md: a credential must never appear in a log line).
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger


class RedactedAccessLogger(AbstractAccessLogger):
    """Logs method, path (without query), status and duration."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Write one line per request at INFO."""
        self.logger.info("%s %s %s %.3fs", request.method, request.path, response.status, time)

    @property
    def enabled(self) -> bool:
        """Skip formatting when nobody listens at INFO."""
        return self.logger.isEnabledFor(logging.INFO)
