"""Provider configuration, from the environment names the providers' own docs use.

The platform starts without any of it; a channel whose settings are missing answers
payment requests with a clear 503.
"""

from __future__ import annotations

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

    @property
    def alipay_configured(self) -> bool:
        return bool(self.alipay_app_id and self.alipay_seller_id and
                    self.alipay_app_private_key_path and self.alipay_public_key_path)
