"""WeChat Pay API v3 and Alipay: signed requests out, verified notifications in.

Both build and sign requests the way the providers document them and check the
signatures of what comes back. Notifications are turned into a ``Notice`` only after the
signature, freshness, decryption and merchant checks pass; anything else raises
``NotificationRefused`` saying whether the provider should retry.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx

from adapters.payments.config import PaymentSettings
from adapters.payments.crypto import (
    aes_gcm_decrypt,
    load_private_key,
    load_public_key,
    sign,
    verify,
)
from domain.errors import InvalidAmount
from domain.money import fen_to_yuan_text, yuan_text_to_fen

MAX_CLOCK_SKEW_S = 300
# Longest signature header value read (a key id or serial, an RSA-4096 signature in
# base64, a nonce all fit many times over); a longer one is refused unread.
MAX_SIGNATURE_HEADER_CHARS = 1024
SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
HTTP_TIMEOUT_S = 10.0
CHINA = ZoneInfo("Asia/Shanghai")


class ProviderError(Exception):
    """The provider refused a request or answered something we cannot trust."""


class NotificationRefused(Exception):
    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry  # True: answer so that the provider delivers it again


class UnverifiedNotification(NotificationRefused):
    """Refused before its signature verified: nothing in it can be trusted, so it is
    counted, never recorded. ``reason`` is a fixed phrase; ``detail`` a short piece of
    what was received, for the log only."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, retry=True)
        self.detail = detail[:60]


@dataclass(frozen=True)
class Notice:
    provider: str
    kind: str  # paid, closed, refund_succeeded, refund_failed, ignored
    out_trade_no: str
    transaction_id: str | None = None
    amount_fen: int | None = None
    currency: str = "CNY"
    paid_at: datetime | None = None
    out_refund_no: str | None = None
    refund_id: str | None = None


@dataclass(frozen=True)
class Query:
    paid: bool
    closed: bool
    transaction_id: str | None = None
    amount_fen: int | None = None
    paid_at: datetime | None = None


@dataclass(frozen=True)
class RefundState:
    status: str  # succeeded, processing, failed
    refund_id: str | None = None


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # Alipay writes Beijing time without an offset.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CHINA)


# -- WeChat Pay API v3 -------------------------------------------------------------------

class WechatPay:
    name = "wechat"

    def __init__(self, settings: PaymentSettings, http: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        assert settings.wechat_configured
        self.settings = settings
        self.base = settings.wechatpay_api_base.rstrip("/")
        self.mchid = settings.wechatpay_mchid
        self.appid = settings.wechatpay_appid
        self.apiv3_key = settings.wechatpay_apiv3_key.encode()  # type: ignore[union-attr]
        self.private_key = load_private_key(settings.wechatpay_private_key_path)  # type: ignore
        self.serial_no = settings.wechatpay_cert_serial_no
        self.verifiers = {}
        if settings.wechatpay_public_key_id and settings.wechatpay_public_key_path:
            for key_id, path in zip(settings.wechatpay_public_key_id.split(","),
                                    settings.wechatpay_public_key_path.split(","), strict=True):
                self.verifiers[key_id.strip()] = load_public_key(path.strip())
        for pair in (settings.wechatpay_platform_certs or "").split(","):
            if "=" in pair:
                serial, path = pair.split("=", 1)
                self.verifiers[serial.strip()] = load_public_key(path.strip())
        self.http = http or httpx.Client(timeout=HTTP_TIMEOUT_S)
        self.clock = clock

    # outgoing ---------------------------------------------------------------------------

    def _authorization(self, method: str, path: str, body: str) -> str:
        timestamp, nonce = str(int(self.clock())), secrets.token_hex(16)
        message = f"{method}\n{path}\n{timestamp}\n{nonce}\n{body}\n".encode()
        return (f'WECHATPAY2-SHA256-RSA2048 mchid="{self.mchid}",nonce_str="{nonce}",'
                f'signature="{sign(self.private_key, message)}",timestamp="{timestamp}",'
                f'serial_no="{self.serial_no}"')

    def _request(self, method: str, path: str, payload: dict | None = None) -> dict:
        body = "" if payload is None else json.dumps(payload, separators=(",", ":"))
        response = self.http.request(
            method, self.base + path, content=body.encode() or None,
            headers={"Authorization": self._authorization(method, path, body),
                     "Accept": "application/json", "Content-Type": "application/json"})
        if response.status_code == 204:
            return {}
        self._check_signature(response.headers, response.content)
        data = response.json() if response.content else {}
        if response.status_code >= 400:
            raise ProviderError(f"WeChat Pay answered {response.status_code}: "
                                f"{data.get('code')} {data.get('message')}")
        return data

    def _check_signature(self, headers, body: bytes) -> None:
        if headers.get("Wechatpay-Signature-Type", SIGNATURE_TYPE) != SIGNATURE_TYPE:
            raise ProviderError("the answer from WeChat Pay is signed in an unknown way")
        key = self.verifiers.get(headers.get("Wechatpay-Serial", ""))
        message = (f"{headers.get('Wechatpay-Timestamp', '')}\n"
                   f"{headers.get('Wechatpay-Nonce', '')}\n").encode() + body + b"\n"
        if key is None or not verify(key, message, headers.get("Wechatpay-Signature", "")):
            raise ProviderError("the answer from WeChat Pay is not signed by a known key")

    def create(self, *, out_trade_no: str, amount_fen: int, description: str, scene: str,
               payer_openid: str | None, expires_at: datetime) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "appid": self.appid, "mchid": self.mchid, "description": description,
            "out_trade_no": out_trade_no, "notify_url": self.settings.wechatpay_notify_url,
            "time_expire": expires_at.astimezone(CHINA).isoformat(timespec="seconds"),
            "amount": {"total": amount_fen, "currency": "CNY"}}
        if scene == "jsapi":
            payload["payer"] = {"openid": payer_openid}
        data = self._request("POST", f"/v3/pay/transactions/{scene}", payload)
        if scene == "native":
            return {"code_url": data["code_url"]}
        return {"prepay_id": data["prepay_id"]}

    def jsapi_params(self, prepay_id: str) -> dict[str, str]:
        """What the page hands to ``WeixinJSBridge.invoke('getBrandWCPayRequest', ...)``:
        paySign is SHA256withRSA by the merchant key over
        ``appId\ntimeStamp\nnonceStr\npackage\n``."""
        params = {"appId": self.appid or "", "timeStamp": str(int(self.clock())),
                  "nonceStr": secrets.token_hex(16), "package": f"prepay_id={prepay_id}",
                  "signType": "RSA"}
        message = (f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n"
                   f"{params['package']}\n")
        params["paySign"] = sign(self.private_key, message.encode())
        return params

    def query(self, out_trade_no: str) -> Query:
        data = self._request("GET", f"/v3/pay/transactions/out-trade-no/{out_trade_no}"
                                    f"?mchid={self.mchid}")
        state = data.get("trade_state")
        return Query(paid=state == "SUCCESS", closed=state in ("CLOSED", "REVOKED"),
                     transaction_id=data.get("transaction_id"),
                     amount_fen=(data.get("amount") or {}).get("total"),
                     paid_at=_parse_time(data.get("success_time")))

    def close(self, out_trade_no: str) -> None:
        self._request("POST", f"/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
                      {"mchid": self.mchid})

    def refund(self, *, out_trade_no: str, out_refund_no: str, amount_fen: int,
               total_fen: int, reason: str | None) -> RefundState:
        data = self._request("POST", "/v3/refund/domestic/refunds", {
            "out_trade_no": out_trade_no, "out_refund_no": out_refund_no,
            "reason": reason or "", "notify_url": self.settings.wechatpay_notify_url,
            "amount": {"refund": amount_fen, "total": total_fen, "currency": "CNY"}})
        return _wechat_refund_state(data)

    def query_refund(self, out_refund_no: str, out_trade_no: str = "") -> RefundState:
        return _wechat_refund_state(self._request(
            "GET", f"/v3/refund/domestic/refunds/{out_refund_no}"))

    # incoming ---------------------------------------------------------------------------

    def parse_notification(self, headers, raw_body: bytes) -> Notice:
        read = {name: headers.get(f"wechatpay-{name}") for name in
                ("serial", "signature", "timestamp", "nonce", "signature-type")}
        if any(value is not None and len(value) > MAX_SIGNATURE_HEADER_CHARS
               for value in read.values()):
            raise UnverifiedNotification("signature header too long")
        serial, signature = read["serial"], read["signature"]
        timestamp, nonce = read["timestamp"], read["nonce"]
        if not (serial and signature and timestamp and nonce):
            raise UnverifiedNotification("signature headers missing")
        if (read["signature-type"] or SIGNATURE_TYPE) != SIGNATURE_TYPE:
            raise UnverifiedNotification("unknown signature type", read["signature-type"])
        key = self.verifiers.get(serial)
        if key is None:
            raise UnverifiedNotification("unknown key serial", serial)
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > MAX_CLOCK_SKEW_S:
            raise UnverifiedNotification("timestamp too far from now", timestamp)
        message = f"{timestamp}\n{nonce}\n".encode() + raw_body + b"\n"
        if not verify(key, message, signature):
            raise UnverifiedNotification("signature does not verify")
        # Authentic from here on: a refusal below is recorded for review.
        try:
            body = json.loads(raw_body)
            resource = body["resource"]
            event_type = body["event_type"]
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise NotificationRefused("unknown resource algorithm", retry=False)
            plain = aes_gcm_decrypt(self.apiv3_key, resource["nonce"],
                                    resource.get("associated_data", ""),
                                    resource["ciphertext"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise NotificationRefused("malformed notification body", retry=False) from None
        if plain is None:
            raise NotificationRefused("resource does not decrypt (bad tag or key)",
                                      retry=True)
        try:
            data = json.loads(plain)
            if data.get("mchid") != self.mchid:
                raise NotificationRefused("mchid is not ours", retry=False)
            out_trade_no = data["out_trade_no"]
            if not isinstance(out_trade_no, str) or not out_trade_no:
                raise NotificationRefused("out_trade_no missing", retry=False)
            if event_type == "TRANSACTION.SUCCESS":
                if data.get("appid") != self.appid:
                    raise NotificationRefused("appid is not ours", retry=False)
                if data.get("trade_state") != "SUCCESS":
                    return Notice("wechat", "ignored", out_trade_no)
                amount = data["amount"]
                total = amount["total"]
                if not isinstance(total, int) or isinstance(total, bool):
                    raise NotificationRefused("amount.total is not an integer", retry=False)
                if not isinstance(data.get("transaction_id"), str):
                    raise NotificationRefused("transaction_id missing", retry=False)
                return Notice("wechat", "paid", out_trade_no, data["transaction_id"], total,
                              amount.get("currency", ""), _parse_time(data.get("success_time")))
            if event_type.startswith("REFUND."):
                status = data.get("refund_status")
                kind = "refund_succeeded" if status == "SUCCESS" else "refund_failed"
                return Notice("wechat", kind, out_trade_no, data.get("transaction_id"),
                              out_refund_no=data["out_refund_no"],
                              refund_id=data.get("refund_id"))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise NotificationRefused("malformed resource", retry=False) from None
        return Notice("wechat", "ignored", out_trade_no)


def _wechat_refund_state(data: dict) -> RefundState:
    status = data.get("status")
    mapped = {"SUCCESS": "succeeded", "PROCESSING": "processing"}.get(status, "failed")
    return RefundState(mapped, data.get("refund_id"))


# -- Alipay ------------------------------------------------------------------------------

def alipay_sign_content(params: dict[str, str]) -> str:
    """What a request the platform sends signs: every parameter but ``sign`` (so
    ``sign_type`` is signed), parameters with empty values left out, sorted by key,
    ``key=value`` joined with ``&``, values not URL-encoded (PROTOCOLS.md section 4)."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params)
                    if k != "sign" and params[k] not in ("", None))


def alipay_notification_content(params: dict[str, str]) -> str:
    """What an asynchronous notification signs: ``sign`` and ``sign_type`` left out,
    empty values kept, sorted by key, ``key=value`` joined with ``&``."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params)
                    if k not in ("sign", "sign_type"))


def extract_json_node(text: str, key: str) -> str | None:
    """The exact text of ``"key": {...}`` in a JSON document (what Alipay signs)."""
    start = text.find(f'"{key}"')
    if start < 0:
        return None
    start = text.find("{", start)
    depth, in_string, escaped = 0, False, False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start:index + 1]
    return None


class Alipay:
    name = "alipay"

    def __init__(self, settings: PaymentSettings, http: httpx.Client | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        assert settings.alipay_configured
        self.settings = settings
        self.gateway = settings.alipay_gateway
        self.app_id = settings.alipay_app_id
        self.seller_id = settings.alipay_seller_id
        self.private_key = load_private_key(settings.alipay_app_private_key_path)  # type: ignore
        self.public_key = load_public_key(settings.alipay_public_key_path)  # type: ignore
        self.http = http or httpx.Client(timeout=HTTP_TIMEOUT_S)
        self.clock = clock

    def _params(self, method: str, biz: dict) -> dict[str, str]:
        params = {"app_id": self.app_id, "method": method, "format": "JSON",
                  "charset": "utf-8", "sign_type": "RSA2",
                  "timestamp": datetime.fromtimestamp(self.clock(), CHINA)
                  .strftime("%Y-%m-%d %H:%M:%S"),
                  "version": "1.0", "biz_content": json.dumps(biz, separators=(",", ":"),
                                                               ensure_ascii=False)}
        if self.settings.alipay_notify_url:
            params["notify_url"] = self.settings.alipay_notify_url
        params = {k: v for k, v in params.items() if v}  # empty: neither sent nor signed
        params["sign"] = sign(self.private_key, alipay_sign_content(params).encode())
        return params

    def _call(self, method: str, biz: dict) -> dict:
        response = self.http.post(self.gateway, data=self._params(method, biz))
        text = response.text
        node_key = method.replace(".", "_") + "_response"
        node = extract_json_node(text, node_key)
        try:
            signature = json.loads(text).get("sign", "")
        except ValueError:
            raise ProviderError("Alipay answered something that is not JSON") from None
        if node is None or not verify(self.public_key, node.encode(), signature):
            raise ProviderError("the answer from Alipay is not signed by its key")
        data = json.loads(node)
        if data.get("code") != "10000":
            raise ProviderError(f"Alipay answered {data.get('code')} {data.get('sub_code')} "
                                f"{data.get('sub_msg') or data.get('msg')}")
        return data

    def create(self, *, out_trade_no: str, amount_fen: int, description: str, scene: str,
               payer_openid: str | None, expires_at: datetime) -> dict[str, Any]:
        biz = {"out_trade_no": out_trade_no, "total_amount": fen_to_yuan_text(amount_fen),
               "subject": description,
               "time_expire": expires_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")}
        if scene == "qr":
            return {"qr_code": self._call("alipay.trade.precreate", biz)["qr_code"]}
        method = "alipay.trade.page.pay" if scene == "page" else "alipay.trade.wap.pay"
        biz["product_code"] = "FAST_INSTANT_TRADE_PAY" if scene == "page" else "QUICK_WAP_WAY"
        return {"pay_url": f"{self.gateway}?{urlencode(self._params(method, biz))}"}

    def query(self, out_trade_no: str) -> Query:
        try:
            data = self._call("alipay.trade.query", {"out_trade_no": out_trade_no})
        except ProviderError as error:
            if "TRADE_NOT_EXIST" in str(error):
                return Query(paid=False, closed=False)
            raise
        status = data.get("trade_status")
        return Query(paid=status in ("TRADE_SUCCESS", "TRADE_FINISHED"),
                     closed=status == "TRADE_CLOSED", transaction_id=data.get("trade_no"),
                     amount_fen=_yuan(data.get("total_amount")),
                     paid_at=_parse_time(data.get("send_pay_date")))

    def close(self, out_trade_no: str) -> None:
        try:
            self._call("alipay.trade.close", {"out_trade_no": out_trade_no})
        except ProviderError as error:
            if "TRADE_NOT_EXIST" not in str(error):  # never scanned: nothing to close
                raise

    def refund(self, *, out_trade_no: str, out_refund_no: str, amount_fen: int,
               total_fen: int, reason: str | None) -> RefundState:
        data = self._call("alipay.trade.refund", {
            "out_trade_no": out_trade_no, "out_request_no": out_refund_no,
            "refund_amount": fen_to_yuan_text(amount_fen), "refund_reason": reason or ""})
        return RefundState("succeeded" if data.get("fund_change") == "Y" else "processing",
                           data.get("trade_no"))

    def query_refund(self, out_refund_no: str, out_trade_no: str = "") -> RefundState:
        # Alipay finds a refund by its order and request number together.
        data = self._call("alipay.trade.fastpay.refund.query",
                          {"out_trade_no": out_trade_no, "out_request_no": out_refund_no})
        return RefundState("succeeded" if data.get("refund_status") == "REFUND_SUCCESS"
                           else "processing", data.get("trade_no"))

    def parse_notification(self, form: dict[str, str]) -> Notice:
        signature = form.get("sign")
        if not signature or form.get("sign_type", "RSA2") != "RSA2":
            raise UnverifiedNotification("sign missing or not RSA2")
        if len(signature) > MAX_SIGNATURE_HEADER_CHARS:
            raise UnverifiedNotification("sign too long")
        if not verify(self.public_key, alipay_notification_content(form).encode(), signature):
            raise UnverifiedNotification("signature does not verify")
        # Authentic from here on: a refusal below is recorded for review.
        if form.get("app_id") != self.app_id:
            raise NotificationRefused("app_id is not ours", retry=False)
        if form.get("seller_id") != self.seller_id:
            raise NotificationRefused("seller_id is not ours", retry=False)
        out_trade_no = form.get("out_trade_no")
        if not out_trade_no:
            raise NotificationRefused("out_trade_no missing", retry=False)
        status = form.get("trade_status")
        if status in ("TRADE_SUCCESS", "TRADE_FINISHED"):
            amount = _yuan(form.get("total_amount"))
            if amount is None or not form.get("trade_no"):
                raise NotificationRefused("total_amount or trade_no missing or malformed",
                                          retry=False)
            return Notice("alipay", "paid", out_trade_no, form["trade_no"], amount, "CNY",
                          _parse_time(form.get("gmt_payment")))
        if status == "TRADE_CLOSED":
            return Notice("alipay", "closed", out_trade_no, form.get("trade_no"))
        return Notice("alipay", "ignored", out_trade_no)


def _yuan(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return yuan_text_to_fen(text)
    except InvalidAmount:
        return None


def providers_from(settings: PaymentSettings, http: httpx.Client | None = None) -> dict:
    found: dict[str, Any] = {}
    if settings.wechat_configured:
        found["wechat"] = WechatPay(settings, http)
    if settings.alipay_configured:
        found["alipay"] = Alipay(settings, http)
    return found


