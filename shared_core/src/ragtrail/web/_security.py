"""Security of the web view: token check, strict Content-Security-Policy, host check.

* With a token, every request carries it (``Authorization: Bearer``, ``X-Ragtrail-Token``
  or the cookie the login form sets), compared in constant time; otherwise 401. Only the
  login form and the shipped static files (which hold no stored data) are served without.
* Every response sends a strict CSP (no inline script or style, nothing from elsewhere),
  ``nosniff``, no referrer and no framing.
* Without a token (loopback), only loopback Host names are served: a web page cannot
  reach the view through DNS rebinding.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["COOKIE", "CSP", "LOOPBACK_HOSTS", "SecurityMiddleware", "token_matches"]

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
COOKIE = "ragtrail_token"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_OPEN_PATHS = ("/login", "/static/")


def token_matches(given: str | None, token: str) -> bool:
    """Constant-time comparison of a presented token with the expected one."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def _presented(headers: Headers, cookies: str | None) -> Iterable[str]:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        yield auth[7:].strip()
    if "x-ragtrail-token" in headers:
        yield headers["x-ragtrail-token"]
    for part in (cookies or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            yield value


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SecurityMiddleware:
    """ASGI middleware: security headers on every response; token and host checks."""

    def __init__(self, app: ASGIApp, *, token: str | None,
                 allowed_hosts: frozenset[str] | None) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *_HEADERS]
            await send(message)

        headers = Headers(scope=scope)
        path: str = scope.get("path", "")
        refusal: Response | None = None
        if self.allowed_hosts is not None and \
                _host_name(headers.get("host", "")) not in self.allowed_hosts:
            refusal = _refuse(path, 400, "this view answers only to its loopback address")
        elif self.token is not None and not path.startswith(_OPEN_PATHS) and not any(
                token_matches(given, self.token)
                for given in _presented(headers, headers.get("cookie"))):
            refusal = _refuse(path, 401, "a valid token is required")
        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


def _refuse(path: str, status: int, reason: str) -> Response:
    if path.startswith("/api/"):
        return JSONResponse({"error": reason, "status": status}, status_code=status)
    if status == 401:
        return HTMLResponse(_LOGIN_PAGE, status_code=401)
    return HTMLResponse(f"<!doctype html><title>{status}</title><p>{reason}</p>",
                        status_code=status)


# A fixed page (nothing of the request in it): the form posts the token to /login.
_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ragtrail · sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/app.css"></head>
<body><main class="login"><h1>ragtrail</h1>
<p>This view needs the token it was started with (<code>--token</code> or
<code>RAGTRAIL_UI_TOKEN</code>).</p>
<form method="post" action="/login"><label>Token
<input type="password" name="token" autocomplete="current-password" autofocus></label>
<button type="submit">Sign in</button></form></main></body></html>
"""
