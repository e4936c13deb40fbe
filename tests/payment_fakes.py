"""Test fixtures for payments: keys made in the test run, an independent builder of
provider notifications, and a local fake provider that checks request signatures.

Every key here is generated for the test session and exists nowhere else.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA
from Crypto.Signature import pkcs1_15
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

MCHID, APPID = "1900000001", "wx0000000000000001"
ALIPAY_APP_ID, ALIPAY_SELLER = "2021000000000001", "2088000000000001"
PUB_KEY_ID, OLD_PUB_KEY_ID = "PUB_KEY_ID_0000000000000001", "PUB_KEY_ID_0000000000000000"
CERT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
APP_SECRET = "test-app-secret-0000000000000001"  # a test fixture, the official account's
PAYER_OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"  # the payer the fake authorises


def rsa_sign(key: RSA.RsaKey, message: bytes) -> str:
    return base64.b64encode(pkcs1_15.new(key).sign(SHA256.new(message))).decode()


def rsa_ok(key: RSA.RsaKey, message: bytes, signature: str) -> bool:
    try:
        pkcs1_15.new(key).verify(SHA256.new(message), base64.b64decode(signature))
        return True
    except (ValueError, TypeError):
        return False


@dataclass
class Keys:
    merchant: RSA.RsaKey  # the platform's WeChat merchant key
    wechat: RSA.RsaKey  # WeChat Pay's key (PUB_KEY_ID)
    wechat_old: RSA.RsaKey  # its previous key, still accepted while keys rotate
    alipay_app: RSA.RsaKey  # the platform's Alipay app key
    alipay: RSA.RsaKey  # Alipay's key
    apiv3: bytes

    @classmethod
    def generate(cls) -> Keys:
        return cls(*(RSA.generate(2048) for _ in range(5)),
                   apiv3=secrets.token_hex(16).encode())

    def write(self, folder) -> dict[str, str]:
        def pem(name: str, key: RSA.RsaKey, private: bool) -> str:
            path = folder / name
            path.write_bytes(key.export_key() if private else key.public_key().export_key())
            return str(path)

        return {
            "WECHATPAY_MCHID": MCHID, "WECHATPAY_APPID": APPID,
            "WECHATPAY_APIV3_KEY": self.apiv3.decode(),
            "WECHATPAY_PRIVATE_KEY_PATH": pem("merchant.pem", self.merchant, True),
            "WECHATPAY_CERT_SERIAL_NO": CERT_SERIAL,
            "WECHATPAY_PUBLIC_KEY_ID": f"{PUB_KEY_ID},{OLD_PUB_KEY_ID}",
            "WECHATPAY_PUBLIC_KEY_PATH": f"{pem('wechat.pem', self.wechat, False)},"
                                         f"{pem('wechat_old.pem', self.wechat_old, False)}",
            "WECHATPAY_NOTIFY_URL": "https://shop.example/api/v1/payments/wechat/notify",
            "ALIPAY_APP_ID": ALIPAY_APP_ID, "ALIPAY_SELLER_ID": ALIPAY_SELLER,
            "ALIPAY_APP_PRIVATE_KEY_PATH": pem("alipay_app.pem", self.alipay_app, True),
            "ALIPAY_PUBLIC_KEY_PATH": pem("alipay.pem", self.alipay, False),
            "ALIPAY_NOTIFY_URL": "https://shop.example/api/v1/payments/alipay/notify",
        }


def oauth_env(fake_base: str, folder) -> dict[str, str]:
    """The settings for JSAPI against the fake: the AppSecret in a file, and WeChat's
    authorise page and API on the fake."""
    path = folder / "wechat_app_secret"
    path.write_text(APP_SECRET + "\n")
    path.chmod(0o600)
    return {"WECHAT_APP_SECRET_FILE": str(path),
            "WECHAT_OAUTH_AUTHORIZE_URL": f"{fake_base}/connect/oauth2/authorize",
            "WECHAT_API_BASE": fake_base}


# -- notifications, built independently of the platform's code -------------------------

def wechat_resource(keys: Keys, plain: dict, nonce: str | None = None,
                    associated_data: str = "transaction") -> dict:
    nonce = nonce or secrets.token_hex(6)
    cipher = AES.new(keys.apiv3, AES.MODE_GCM, nonce=nonce.encode())
    cipher.update(associated_data.encode())
    ciphertext, tag = cipher.encrypt_and_digest(json.dumps(plain).encode())
    return {"algorithm": "AEAD_AES_256_GCM", "ciphertext":
            base64.b64encode(ciphertext + tag).decode(), "nonce": nonce,
            "associated_data": associated_data, "original_type": "transaction"}


def wechat_paid(no: str, total: int, **overrides) -> dict:
    out_trade_no = no
    return {"mchid": MCHID, "appid": APPID, "out_trade_no": out_trade_no,
            "transaction_id": "4200" + out_trade_no[-24:], "trade_type": "NATIVE",
            "trade_state": "SUCCESS", "trade_state_desc": "ok", "bank_type": "OTHERS",
            "success_time": "2026-03-01T10:00:00+08:00", "payer": {"openid": "o-test"},
            "amount": {"total": total, "payer_total": total, "currency": "CNY",
                       "payer_currency": "CNY"}, **overrides}


def wechat_notification(keys: Keys, plain: dict, *, event_type="TRANSACTION.SUCCESS",
                        key: RSA.RsaKey | None = None, serial: str = PUB_KEY_ID,
                        timestamp: int | None = None) -> tuple[bytes, dict]:
    body = json.dumps({"id": secrets.token_hex(8), "create_time": "2026-03-01T10:00:01+08:00",
                       "resource_type": "encrypt-resource", "event_type": event_type,
                       "summary": "ok", "resource": wechat_resource(keys, plain)}).encode()
    timestamp = str(timestamp if timestamp is not None else int(time.time()))
    nonce = secrets.token_hex(16)
    signature = rsa_sign(key or keys.wechat, f"{timestamp}\n{nonce}\n".encode() + body + b"\n")
    return body, {"Wechatpay-Serial": serial, "Wechatpay-Signature": signature,
                  "Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce,
                  "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
                  "Content-Type": "application/json"}


def alipay_params(out_trade_no: str, amount_yuan: str, **overrides) -> dict[str, str]:
    return {"notify_time": "2026-03-01 10:00:02", "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(12), "app_id": ALIPAY_APP_ID, "charset": "utf-8",
            "version": "1.0", "sign_type": "RSA2", "trade_no": "2026" + out_trade_no[-20:],
            "out_trade_no": out_trade_no, "buyer_id": "2088102177846880",
            "seller_id": ALIPAY_SELLER, "trade_status": "TRADE_SUCCESS",
            "total_amount": amount_yuan, "receipt_amount": amount_yuan,
            "gmt_payment": "2026-03-01 10:00:00", "subject": "", **overrides}


def alipay_sign(keys: Keys, params: dict[str, str], key: RSA.RsaKey | None = None) -> dict:
    """A notification as Alipay signs it: without ``sign`` and ``sign_type``, blank values
    kept."""
    content = "&".join(f"{k}={params[k]}" for k in sorted(params)
                       if k not in ("sign", "sign_type"))
    return {**params, "sign": rsa_sign(key or keys.alipay, content.encode())}


def alipay_request_content(params: dict[str, str]) -> str:
    """What the gateway checks a request's ``sign`` over: every parameter but ``sign``
    (``sign_type`` included), blank values left out."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k])


# -- the fake provider -------------------------------------------------------------------

@dataclass
class FakeProvider:
    keys: Keys
    orders: dict[str, dict] = field(default_factory=dict)
    refunds: dict[str, dict] = field(default_factory=dict)
    refused: int = 0
    refund_outcome: str = "SUCCESS"
    # Every request as it arrived: (method, path with query, body, Authorization) for
    # WeChat Pay, the parameters for Alipay.
    wechat_requests: list[tuple[str, str, bytes, str]] = field(default_factory=list)
    alipay_requests: list[dict[str, str]] = field(default_factory=list)
    # WeChat web authorisation: codes handed out (code -> openid) and every exchange
    # asked for, as (code, secret given, answered openid or None).
    codes: dict[str, str] = field(default_factory=dict)
    exchanges: list[tuple[str, str, str | None]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()
        keys = self.keys

        def signed(data: dict, status: int = 200) -> Response:
            body = json.dumps(data).encode()
            timestamp, nonce = str(int(time.time())), secrets.token_hex(8)
            return Response(body, status_code=status, media_type="application/json", headers={
                "Wechatpay-Serial": PUB_KEY_ID, "Wechatpay-Timestamp": timestamp,
                "Wechatpay-Nonce": nonce,
                "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
                "Wechatpay-Signature": rsa_sign(keys.wechat, f"{timestamp}\n{nonce}\n"
                                                .encode() + body + b"\n")})

        async def check(request: Request) -> bytes | None:
            body = await request.body()
            auth = request.headers.get("authorization", "")
            parts = dict(p.split("=", 1) for p in auth.removeprefix(
                "WECHATPAY2-SHA256-RSA2048 ").split(","))
            parts = {k: v.strip('"') for k, v in parts.items()}
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            self.wechat_requests.append((request.method, path, body, auth))
            message = (f"{request.method}\n{path}\n{parts.get('timestamp')}\n"
                       f"{parts.get('nonce_str')}\n").encode() + body + b"\n"
            ok = parts.get("mchid") == MCHID and parts.get("serial_no") == CERT_SERIAL and \
                rsa_ok(keys.merchant, message, parts.get("signature", ""))
            if not ok:
                self.refused += 1
                return None
            return body

        @app.post("/v3/pay/transactions/{scene}")
        async def create(scene: str, request: Request):
            body = await check(request)
            if body is None:
                return JSONResponse({"code": "SIGN_ERROR"}, status_code=401)
            data = json.loads(body)
            if scene == "jsapi" and not (data.get("payer") or {}).get("openid"):
                return signed({"code": "PARAM_ERROR", "message": "payer.openid"}, 400)
            self.orders[data["out_trade_no"]] = {"total": data["amount"]["total"],
                                                 "state": "NOTPAY", "channel": "wechat",
                                                 "scene": scene, "payer": data.get("payer"),
                                                 "appid": data.get("appid")}
            if scene == "native":
                return signed({"code_url": f"weixin://wxpay/bizpayurl?pr={data['out_trade_no']}"})
            return signed({"prepay_id": f"wx{data['out_trade_no']}"})

        @app.get("/v3/pay/transactions/out-trade-no/{no}")
        async def query(no: str, request: Request):
            if await check(request) is None:
                return JSONResponse({"code": "SIGN_ERROR"}, status_code=401)
            order = self.orders.get(no)
            if order is None:
                return signed({"code": "ORDER_NOT_EXIST", "message": "no"}, 404)
            return signed({"out_trade_no": no, "trade_state": order["state"],
                           "transaction_id": "4200" + no[-24:],
                           "success_time": "2026-03-01T10:00:00+08:00",
                           "amount": {"total": order["total"], "currency": "CNY"}})

        @app.post("/v3/pay/transactions/out-trade-no/{no}/close")
        async def close(no: str, request: Request):
            if await check(request) is None:
                return JSONResponse({"code": "SIGN_ERROR"}, status_code=401)
            if no in self.orders:
                self.orders[no]["state"] = "CLOSED"
            return Response(status_code=204)

        @app.post("/v3/refund/domestic/refunds")
        async def refund(request: Request):
            body = await check(request)
            if body is None:
                return JSONResponse({"code": "SIGN_ERROR"}, status_code=401)
            data = json.loads(body)
            self.refunds[data["out_refund_no"]] = {"status": self.refund_outcome}
            return signed({"refund_id": "5030" + data["out_refund_no"][-20:],
                           "out_refund_no": data["out_refund_no"],
                           "status": self.refund_outcome})

        @app.get("/v3/refund/domestic/refunds/{no}")
        async def refund_query(no: str, request: Request):
            if await check(request) is None:
                return JSONResponse({"code": "SIGN_ERROR"}, status_code=401)
            return signed({"refund_id": "5030" + no[-20:], "out_refund_no": no,
                           "status": self.refunds.get(no, {}).get("status", "ABNORMAL")})

        @app.get("/connect/oauth2/authorize")
        async def authorize(appid: str, redirect_uri: str, response_type: str, scope: str,
                            state: str = ""):
            """WeChat's authorise page for snsapi_base: no question, straight back."""
            if appid != APPID or response_type != "code" or scope != "snsapi_base":
                return Response("redirect_uri 参数错误", status_code=400)
            code = secrets.token_hex(16)
            self.codes[code] = PAYER_OPENID
            joiner = "&" if "?" in redirect_uri else "?"
            return RedirectResponse(f"{redirect_uri}{joiner}code={code}&state={state}",
                                    status_code=302)

        @app.get("/sns/oauth2/access_token")
        async def access_token(appid: str, secret: str, code: str, grant_type: str):
            openid = self.codes.pop(code, None) if (
                appid == APPID and secret == APP_SECRET and
                grant_type == "authorization_code") else None
            self.exchanges.append((code, secret, openid))
            if openid is None:  # as WeChat answers, with HTTP 200
                return JSONResponse({"errcode": 40029, "errmsg": "invalid code"})
            return JSONResponse({"access_token": secrets.token_hex(16), "expires_in": 7200,
                                 "refresh_token": secrets.token_hex(16), "openid": openid,
                                 "scope": "snsapi_base"})

        @app.post("/alipay/gateway.do")
        async def alipay(request: Request):
            # Common parameters may come in the query string, the rest in the form.
            params = dict(parse_qsl(request.url.query, keep_blank_values=True))
            params.update(parse_qsl((await request.body()).decode(), keep_blank_values=True))
            self.alipay_requests.append(params)
            content = alipay_request_content(params)
            if params.get("sign_type") != "RSA2" or \
                    not rsa_ok(keys.alipay_app, content.encode(), params.get("sign", "")):
                self.refused += 1
                node = {"code": "40002", "sub_code": "isv.invalid-signature"}
            else:
                node = self._alipay(params["method"], json.loads(params["biz_content"]))
            key = params.get("method", "x").replace(".", "_") + "_response"
            node_text = json.dumps(node)
            text = f'{{"{key}":{node_text},"sign":"{rsa_sign(keys.alipay, node_text.encode())}"}}'
            return Response(text, media_type="application/json")

        return app

    def _alipay(self, method: str, biz: dict) -> dict:
        no = biz.get("out_trade_no", "")
        if method == "alipay.trade.precreate":
            self.orders[no] = {"total": biz["total_amount"], "state": "WAIT_BUYER_PAY",
                               "channel": "alipay"}
            return {"code": "10000", "msg": "Success", "out_trade_no": no,
                    "qr_code": f"https://qr.alipay.com/{no}"}
        if method == "alipay.trade.query":
            order = self.orders.get(no)
            if order is None:
                return {"code": "40004", "sub_code": "ACQ.TRADE_NOT_EXIST"}
            return {"code": "10000", "trade_status": order["state"], "trade_no": "2026" + no[-20:],
                    "total_amount": order["total"], "send_pay_date": "2026-03-01 10:00:00"}
        if method == "alipay.trade.close":
            if no in self.orders:
                self.orders[no]["state"] = "TRADE_CLOSED"
            return {"code": "10000"}
        if method == "alipay.trade.refund":
            self.refunds[biz["out_request_no"]] = {"status": "REFUND_SUCCESS",
                                                   "out_trade_no": no}
            return {"code": "10000", "fund_change": "Y", "trade_no": "2026" + no[-20:]}
        if method == "alipay.trade.fastpay.refund.query":
            refund = self.refunds.get(biz.get("out_request_no", ""))
            if refund is None or refund.get("out_trade_no") != no:
                return {"code": "10000", "out_trade_no": no}  # no such refund (yet)
            return {"code": "10000", "out_trade_no": no, "trade_no": "2026" + no[-20:],
                    "out_request_no": biz["out_request_no"],
                    "refund_status": refund["status"]}
        return {"code": "40004", "sub_code": "ACQ.UNKNOWN"}

    def pay(self, out_trade_no: str) -> None:
        order = self.orders[out_trade_no]
        order["state"] = "SUCCESS" if order["channel"] == "wechat" else "TRADE_SUCCESS"


def serve_in_thread(app, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    return server, thread
