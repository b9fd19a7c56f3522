"""What every route handler reads and answers: size-bounded (JSON) request bodies, models as JSON
responses, and `ApiError`, which the application's middleware renders as an `ErrorBody`.

One module below the application (app.py) and the route modules that it registers, so that each
imports these at the top rather than from app.py inside its handlers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .models import ErrorBody
from .openapi import AUTH_ERRORS, Response, err

M = TypeVar("M", bound=BaseModel)


class ApiError(Exception):
    """Raised by handlers; the middleware renders it as an ErrorBody JSON response."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        hint: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = ErrorBody(error=code, message=message, hint=hint)
        self.headers = headers or {}


async def small_body(request: web.Request, limit: int, too_large: str) -> bytes:
    """The whole body of a request whose body may be at most ``limit`` bytes (JSON documents,
    policy bundles); 413 with ``too_large`` past it, whether or not a Content-Length says so.
    One read of the stream returns only what has arrived, so it reads until the end."""
    if (request.content_length or 0) > limit:
        raise ApiError(413, "too_large", too_large)
    body = bytearray()
    while len(body) <= limit:
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
    raise ApiError(413, "too_large", too_large)


async def json_body(
    request: web.Request,
    model: type[M],
    limit: int,
    too_large: str,
    expected: str,
    *,
    strict: bool = False,
) -> M:
    """A small JSON body (`small_body`) validated as `model`; 400 when it is not one, saying
    where pydantic's first problem is, with the body the route expects (`expected`) as hint."""
    raw = await small_body(request, limit, too_large)
    try:
        return model.model_validate_json(raw, strict=strict)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(
            400, "bad_request", f"{where}: {first['msg']}", hint=f"expected {expected}"
        ) from None


JSON_BODY_ERRORS: Mapping[str, Response] = {
    "400": err("Malformed body."),
    **AUTH_ERRORS,
    "413": err("Body too large."),
}
"""The failures an authenticated route that reads `json_body` documents, in status order."""


def json_reply(
    model: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """``model`` as a JSON response; fields that are None are left out."""
    return web.Response(
        status=status,
        body=model.model_dump_json(by_alias=True, exclude_none=True).encode(),
        content_type="application/json",
        headers=headers,
    )
