"""WeChat web authorisation (snsapi_base) for JSAPI payments: the payer's openid.

Inside WeChat's browser the page sends the payer to the official account's authorise
page; WeChat sends them back with a one-time ``code``, which the server exchanges, with
the account's AppSecret, for the payer's openid under that account (docs/payments.md,
JSAPI). The AppSecret is never logged; an openid is logged only as its first characters.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import quote, urlencode

import httpx

from adapters.payments.config import PaymentSettings
from adapters.payments.providers import HTTP_TIMEOUT_S, ProviderError


SECRET_IN_URL = re.compile(r"\b(secret|code)=[^&\s\"']*")


class _RedactExchange(logging.Filter):
    """httpx logs every request's URL; the code exchange carries the AppSecret in its
    query (as WeChat requires), so its ``secret`` and ``code`` are blanked there."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any("/sns/oauth2/" in str(a)
                                                  for a in record.args):
            record.args = tuple(SECRET_IN_URL.sub(r"\1=***", str(a))
                                if "/sns/oauth2/" in str(a) else a for a in record.args)
        return True


logging.getLogger("httpx").addFilter(_RedactExchange())


class WechatOAuth:
    def __init__(self, settings: PaymentSettings, http: httpx.Client | None = None) -> None:
        assert settings.jsapi_configured
        self.appid = settings.wechatpay_appid
        self._secret = settings.app_secret()
        self.authorize_base = settings.wechat_oauth_authorize_url
        self.api_base = settings.wechat_api_base.rstrip("/")
        self.redirect_base = (settings.wechat_oauth_redirect_base or "").rstrip("/") or None
        self.http = http or httpx.Client(timeout=HTTP_TIMEOUT_S)

    def __repr__(self) -> str:  # the secret stays out of any traceback or log
        return f"WechatOAuth(appid={self.appid!r})"

    def authorize_url(self, redirect_uri: str, state: str) -> str:
        query = urlencode({"appid": self.appid, "redirect_uri": redirect_uri,
                           "response_type": "code", "scope": "snsapi_base",
                           "state": state}, quote_via=quote)
        return f"{self.authorize_base}?{query}#wechat_redirect"

    def openid(self, code: str) -> str:
        """The openid a code stands for; ProviderError when WeChat refuses it."""
        if not self._secret:
            raise ProviderError("the official account's AppSecret is empty")
        try:
            response = self.http.get(f"{self.api_base}/sns/oauth2/access_token", params={
                "appid": self.appid, "secret": self._secret, "code": code,
                "grant_type": "authorization_code"})
            data = response.json()
        except (httpx.HTTPError, ValueError):
            raise ProviderError("WeChat's authorisation service did not answer") from None
        openid = data.get("openid") if isinstance(data, dict) else None
        if not isinstance(openid, str) or not openid or len(openid) > 128:
            code_ = data.get("errcode") if isinstance(data, dict) else None
            raise ProviderError(f"WeChat refused the authorisation code (errcode {code_})")
        return openid


def oauth_from(settings: PaymentSettings, http: httpx.Client | None = None
               ) -> WechatOAuth | None:
    return WechatOAuth(settings, http) if settings.jsapi_configured else None


def masked(openid: str) -> str:
    """What a log may say of an openid."""
    return openid[:6] + "…"
