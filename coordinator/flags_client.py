"""The client side of tenant flag overrides: a daemon's conditional poll, an admin's change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from maestro.errors import CoordinatorError
from maestro.flags import FlagSetting, TenantFlags

from .client import CoordinatorClient, _answer_error
from .flags_routes import FlagChanged, FlagPut, TenantFlagsBody


@dataclass(frozen=True, slots=True)
class Poll:
    flags: TenantFlags | None  # None: unchanged since the ETag sent (304)


class FlagsClient(CoordinatorClient):
    """A CoordinatorClient (same tokens, refresh and error mapping) that also speaks flags."""

    def _flags_url(self, name: str | None = None) -> str:
        base = f"{self.base_url}/v1/tenants/{self.tenant}/flags"
        return base if name is None else f"{base}/{name}"

    async def poll_flags(self, etag: str = "") -> Poll:
        headers = {"If-None-Match": etag} if etag else {}
        status, body, resp_headers = await self._request("GET", self._flags_url(), headers=headers)
        if status == 304:
            return Poll(None)
        if status != 200:
            raise _answer_error("GET tenant flags", status, body)
        try:
            parsed = TenantFlagsBody.model_validate_json(body)
        except ValidationError as exc:
            raise CoordinatorError(f"the coordinator sent malformed tenant flags: {exc}") from exc
        return Poll(
            TenantFlags(
                tenant=parsed.tenant,
                overrides=parsed.overrides,
                etag=resp_headers.get("etag", ""),
                fetched_at=datetime.now(UTC),
            )
        )

    async def set_flag(
        self, name: str, *, value: Any = None, kill: bool = False, clear: bool = False, reason: str
    ) -> FlagSetting | None:
        body = FlagPut(value=value, kill=kill, clear=clear, reason=reason)
        # the reason is free text: redacted and last-scanned like every other body
        payload = self.redactor.redact_json(body.model_dump(mode="json", exclude_none=True))
        resp = await self._post_json(
            "PUT", f"/v1/tenants/{self.tenant}/flags/{name}", payload, f"PUT tenant flag {name}"
        )
        return FlagChanged.model_validate_json(resp).override
