"""Maps service errors to HTTP statuses and JSON `{"error": ...}` bodies; never leaks a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from fulcrum.controller.services.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    RateLimited,
    ServiceError,
    Unauthenticated,
    Unavailable,
    Unsupported,
)

log = logging.getLogger("fulcrum.api")

STATUS = {
    InvalidInput: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PreconditionFailed: 412,
    RateLimited: 429,
    Unsupported: 501,
    Unavailable: 503,
}


class ErrorBody(BaseModel):
    error: str


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "Invalid input; the message names the field"),
        (401, "Authentication required"),
        (403, "The role does not allow this"),
        (404, "No such object"),
        (409, "Conflict with the current state"),
        (412, "The object changed since it was read (_last_modified)"),
        (429, "Too many failed logins"),
    )
}


NEUTRON_PATHS = ("/v2.0/networks", "/v2.0/subnets", "/v2/networks", "/v2/subnets")
NEUTRON_TYPES = {400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "HTTPForbidden", 404: "HTTPNotFound",
                 409: "HTTPConflict"}  # fmt: skip


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, path: str = ""
) -> JSONResponse:
    """`{"error": ...}` on the native API; Octavia's and Neutron's shapes on theirs, so their clients
    print the message (python-octaviaclient reads `faultstring`, Neutron clients `NeutronError`)."""
    if path.startswith(NEUTRON_PATHS):
        body: dict[str, object] = {
            "NeutronError": {"type": NEUTRON_TYPES.get(status, "HTTPError"), "message": message, "detail": ""}
        }
    elif path == "/v2" or path.startswith(("/v2/", "/v2.0")):
        body = {
            "faultcode": "Client" if status < 500 else "Server",
            "faultstring": message,
            "debuginfo": None,
        }
    else:
        body = {"error": message}
    return JSONResponse(body, status_code=status, headers=headers)


def _location(loc: tuple[object, ...]) -> str:
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    where = ""
    for part in parts:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where


def service_error_response(exc: ServiceError, path: str = "") -> JSONResponse:
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 500)
    headers = None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    if isinstance(exc, Unauthenticated):
        headers = {"WWW-Authenticate": 'Basic realm="fulcrum"'}
    return error_response(status, exc.message, headers, path)


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return service_error_response(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            where = _location(tuple(error.get("loc", ())))
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            if error.get("type") == "json_invalid":
                where, message = "", "the request body is not valid JSON"
            problems.append(f"{where}: {message}" if where else message)
        return error_response(400, "; ".join(problems[:20]) or "invalid request", path=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(
            exc.status_code, str(exc.detail), getattr(exc, "headers", None), request.url.path
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(
            500, "internal error; the controller log has the details", path=request.url.path
        )
