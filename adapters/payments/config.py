"""Provider configuration, from the environment names the providers' own docs use.

The platform starts without any of it; a channel whose settings are missing answers
payment requests with a clear 503.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from ledger.config import SafeDotEnv


class PaymentSettings(SafeDotEnv):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    wechatpay_api_base: str = "https://api.mch.weixin.qq.com"
    wechatpay_mchid: str | None = None
    wechatpay_appid: str | None = None
    wechatpay_apiv3_key: str | None = None
    wechatpay_private_key_path: str | None = None
    wechatpay_cert_serial_no: str | None = None
    # WeChat Pay public keys (PUB_KEY_ID_...): comma-separated ids and paths, in the
    # same order, several at once while keys rotate.
    wechatpay_public_key_id: str | None = None
    wechatpay_public_key_path: str | None = None
    # Older platform certificates: "SERIAL=path,SERIAL2=path2".
    wechatpay_platform_certs: str | None = None
    wechatpay_notify_url: str | None = None
    # JSAPI inside WeChat's browser: the official account (its AppID is WECHATPAY_APPID)
    # tells the page its payer's openid by web authorisation (snsapi_base), which needs
    # the account's AppSecret: in a file (WECHAT_APP_SECRET_FILE, mode 600) or the
    # environment (WECHAT_APP_SECRET). Never logged, never shown.
    wechat_app_secret: SecretStr | None = None
    wechat_app_secret_file: str | None = None
    wechat_oauth_authorize_url: str = "https://open.weixin.qq.com/connect/oauth2/authorize"
    wechat_api_base: str = "https://api.weixin.qq.com"
    # The platform's public address as WeChat reaches it (the authorisation domain set on
    # the official account), e.g. https://pay.mall.example; unset: the request's own.
    wechat_oauth_redirect_base: str | None = None

    alipay_gateway: str = "https://openapi.alipay.com/gateway.do"
    alipay_app_id: str | None = None
    alipay_seller_id: str | None = None
    alipay_app_private_key_path: str | None = None
    alipay_public_key_path: str | None = None
    alipay_notify_url: str | None = None

    @property
    def wechat_configured(self) -> bool:
        return bool(self.wechatpay_mchid and self.wechatpay_appid and
                    self.wechatpay_apiv3_key and self.wechatpay_private_key_path and
                    self.wechatpay_cert_serial_no and
                    (self.wechatpay_public_key_path or self.wechatpay_platform_certs))

    def app_secret(self) -> str | None:
        """The official account's AppSecret, from its file if one is named."""
        if self.wechat_app_secret_file:
            with open(self.wechat_app_secret_file, encoding="utf-8") as handle:
                return handle.read().strip() or None
        return self.wechat_app_secret.get_secret_value() if self.wechat_app_secret else None

    @property
    def jsapi_configured(self) -> bool:
        return self.wechat_configured and bool(self.wechat_app_secret_file or
                                               self.wechat_app_secret)

    @property
    def alipay_configured(self) -> bool:
        return bool(self.alipay_app_id and self.alipay_seller_id and
                    self.alipay_app_private_key_path and self.alipay_public_key_path)
