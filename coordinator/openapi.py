"""The OpenAPI 3 description served at /openapi.json, built from the same pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

import maestro

from .models import (
    ErrorBody,
    Health,
    KeyCreated,
    KeyCreateRequest,
    KeyInfo,
    TenantStatus,
    TokenRequest,
    TokenResponse,
)
from .settings import Settings

_REF = "#/components/schemas/{model}"


def _err(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}},
    }


def _ok_json(model: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}},
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (m, "validation")
            for m in (
                TokenRequest,
                TokenResponse,
                ErrorBody,
                TenantStatus,
                Health,
                KeyCreateRequest,
                KeyInfo,
                KeyCreated,
            )
        ],
        ref_template=_REF,
    )
    components = dict(schemas.get("$defs", {}))
    auth_errors = {
        "401": _err("Missing, invalid, expired or revoked credentials."),
        "403": _err("The credential's tenant or role does not allow this."),
    }
    path_params = [
        {
            "name": "tenant",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
        },
        {
            "name": "hash",
            "in": "path",
            "required": True,
            "description": "sha256 hex: of the blob (cas), or the action digest (ac)",
            "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        },
    ]
    blob = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}

    def entry_ops(kind: str, what: str) -> dict[str, Any]:
        get_ok = {
            "description": f"Hit: the {what}.",
            "headers": {
                "Content-Encoding": {
                    "description": "zstd when the client sent Accept-Encoding: zstd",
                    "schema": {"type": "string"},
                }
            },
            "content": blob,
        }
        return {
            "parameters": path_params,
            "get": {
                "operationId": f"get_{kind}",
                "summary": f"Read a {what}",
                "security": [{"bearer": []}, {"basic": []}],
                "parameters": [
                    {"name": "Accept-Encoding", "in": "header", "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": get_ok,
                    "400": _err("Malformed digest."),
                    **auth_errors,
                    "404": _err("Miss."),
                },
            },
            "head": {
                "operationId": f"head_{kind}",
                "summary": f"Check that a {what} exists",
                "security": [{"bearer": []}, {"basic": []}],
                "responses": {
                    "200": {"description": "Present; Content-Length is its size."},
                    "400": {"description": "Malformed digest."},
                    "401": {"description": "Unauthorized."},
                    "403": {"description": "Forbidden."},
                    "404": {"description": "Miss."},
                },
            },
            "put": {
                "operationId": f"put_{kind}",
                "summary": f"Store a {what} (roles read-write, admin)",
                "security": [{"bearer": []}, {"basic": []}],
                "parameters": [
                    {
                        "name": "Content-Encoding",
                        "in": "header",
                        "schema": {"type": "string", "enum": ["zstd", "identity"]},
                    },
                    {
                        "name": "X-Digest-SizeBytes",
                        "in": "header",
                        "description": "uncompressed size (checked when present)",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "requestBody": {"required": True, "content": blob},
                "responses": {
                    "200": {"description": "Stored (or already present)."},
                    "400": _err(
                        "Malformed digest, sha256 mismatch (nothing stored), bad zstd, or "
                        "an invalid ActionResult."
                    ),
                    **auth_errors,
                    "411": _err("Content-Length missing."),
                    "413": _err(f"Body over {settings.max_blob_bytes} bytes."),
                    "415": _err("Unsupported Content-Encoding."),
                    "507": _err("Tenant quota or server storage exhausted."),
                },
            },
        }

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Maestro coordinator",
            "version": maestro.__version__,
            "description": "Bazel-HTTP-cache-compatible remote cache with tenants and tokens. "
            "Methods other than GET, HEAD and PUT on cache paths answer 405.",
        },
        "paths": {
            "/v1/token": {
                "post": {
                    "operationId": "create_token",
                    "summary": "Exchange an API key for a short-lived bearer token",
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": _REF.format(model="TokenRequest")}
                            }
                        },
                    },
                    "responses": {
                        "200": _ok_json("TokenResponse", "A token; refresh before expires_at."),
                        "400": _err("Malformed body."),
                        "401": _err("Invalid or revoked API key."),
                    },
                }
            },
            "/v1/tenants/{tenant}": {
                "get": {
                    "operationId": "tenant_status",
                    "summary": "Usage and quota of a tenant (admin role)",
                    "security": [{"bearer": []}, {"basic": []}],
                    "parameters": [path_params[0]],
                    "responses": {"200": _ok_json("TenantStatus", "Usage."), **auth_errors},
                }
            },
            "/v1/tenants/{tenant}/keys": {
                "post": {
                    "operationId": "create_key",
                    "summary": "Create an API key of this tenant (admin role); shown once",
                    "security": [{"bearer": []}, {"basic": []}],
                    "parameters": [path_params[0]],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": _REF.format(model="KeyCreateRequest")}
                            }
                        },
                    },
                    "responses": {
                        "201": _ok_json("KeyCreated", "The new key (store it now)."),
                        "400": _err("Malformed body."),
                        **auth_errors,
                        "413": _err("Body too large."),
                    },
                }
            },
            "/v1/tenants/{tenant}/keys/{key_id}": {
                "delete": {
                    "operationId": "revoke_key",
                    "summary": "Revoke a key of this tenant (admin role), at once on every replica",
                    "security": [{"bearer": []}, {"basic": []}],
                    "parameters": [
                        path_params[0],
                        {
                            "name": "key_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _ok_json("KeyInfo", "The key, now revoked."),
                        **auth_errors,
                        "404": _err("No such key in this tenant."),
                    },
                }
            },
            "/{tenant}/cas/{hash}": entry_ops("cas", "CAS blob"),
            "/{tenant}/ac/{hash}": entry_ops("ac", "action-cache entry"),
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness and store readability",
                    "responses": {
                        "200": _ok_json("Health", "Healthy."),
                        "503": _err("A backend (Redis, the blob upstream) does not answer."),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3 document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "any user name; the token (or API key) as the password",
                },
            },
        },
    }
