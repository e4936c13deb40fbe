"""Security headers on every answer.

A plain ASGI middleware (like ``RequestContext``): it only adds headers to the start of
each answer. An answer that brings its own ``Content-Security-Policy`` (the documentation
pages) keeps it; the console's and the tenant page's HTML gets a policy that loads only
from this server; other HTML (receipts) a policy that runs no script at all; everything
else (JSON, CSV, PDF) a policy that loads nothing.
"""

from __future__ import annotations

# No script, no plug-in, no form target, nothing from elsewhere; the receipt templates keep
# their inline <style>.
HTML_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
OTHER_POLICY = "default-src 'none'; frame-ancestors 'none'"
# The console and the tenant page: scripts, styles and images from this server only (no
# inline script or style anywhere in them), forms posting back here only.
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; form-action 'self'; "
               "frame-ancestors 'none'; base-uri 'none'")
PAGE_PREFIXES = ("/console", "/t/")
ALWAYS = ((b"x-content-type-options", b"nosniff"),
          (b"referrer-policy", b"no-referrer"),
          (b"x-frame-options", b"DENY"))


class SecurityHeaders:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path = scope.get("path", "")

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [pair for pair in ALWAYS if pair[0] not in present]
                if b"content-security-policy" not in present:
                    kind = next((value for name, value in headers
                                 if name.lower() == b"content-type"), b"")
                    html = kind.startswith(b"text/html")
                    page = path.startswith(PAGE_PREFIXES) and "/receipt" not in path
                    policy = (PAGE_POLICY if html and page else HTML_POLICY if html
                              else OTHER_POLICY)
                    headers.append((b"content-security-policy", policy.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
