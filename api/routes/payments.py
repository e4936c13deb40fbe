"""Self-service payments: orders, provider notifications, refunds to the payer."""

from __future__ import annotations

import asyncio
import csv
import logging
from concurrent.futures import Future
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from adapters.payments.providers import (
    MAX_SIGNATURE_HEADER_CHARS,
    NotificationRefused,
    UnverifiedNotification,
)
from adapters.payments.refusals import unverified_notifications
from api import render
from api.problems import ApiProblem
from api.auth import allow, require_account
from domain.access import PUBLIC
from api.deps import actor, idempotency_key, parse_id, required_idempotency_key
from api.schemas import PositiveFen, Strict
from api.services import Config, Payments, ReadModels, Reports
from domain.errors import ConcurrencyLimitExceeded, DomainError
from domain.payment import PaymentOrder
from ledger.commands import (
    ClosePaymentOrder,
    CreatePaymentOrder,
    CreditPayment,
    RecordRejectedNotification,
    RefundPayment,
    SettleRefund,
)
from ledger.config import Settings
from ledger.payments import PaymentService

log = logging.getLogger(__name__)
# The headers kept with an authentic but refused notification, each cut to the limit.
KEPT_HEADERS = ("wechatpay-serial", "wechatpay-timestamp", "wechatpay-nonce",
                "wechatpay-signature-type", "wechatpay-signature", "content-type",
                "user-agent")
router = APIRouter(tags=["payments"])


class OrderIn(Strict):
    account_id: str
    amount: PositiveFen
    channel: Literal["wechat", "alipay"]
    scene: Literal["native", "jsapi", "page", "wap", "qr"]
    wallet: Literal["electricity", "water", "property_fee"] = "electricity"
    payer_openid: Annotated[str, Field(max_length=128)] | None = None


class RefundIn(Strict):
    amount: PositiveFen
    reason: Annotated[str, Field(max_length=80)] | None = None


def order_body(order: PaymentOrder) -> dict[str, Any]:
    return {"out_trade_no": order.out_trade_no, "account_id": str(order.account_id),
            "amount": render.yuan(order.amount_fen), "channel": order.channel,
            "scene": order.scene, "wallet": order.wallet, "status": order.status,
            "expires_at": render.iso(order.expires_at), **order.provider_reply,
            "provider_transaction_id": order.provider_transaction_id,
            "paid_at": render.iso(order.paid_at),
            "credit_transaction_id": str(order.credit_transaction_id)
            if order.credit_transaction_id else None,
            "refunds": [{"out_refund_no": no, "amount": render.yuan(r["amount_fen"]),
                         "status": r["status"], "refund_id": r["refund_id"]}
                        for no, r in order.refunds.items()]}


@router.post("/payments/orders", status_code=201, summary="Create a payment order",
             **allow("payments.create"))
def create_order(request: Request, body: OrderIn, payments: Payments, catch_up: ReadModels,
                 who: Annotated[dict, Depends(actor)],
                 key: Annotated[str | None, Depends(idempotency_key)]) -> JSONResponse:
    require_account(request, body.account_id)
    order = payments.carry_out_order(CreatePaymentOrder(
        parse_id(body.account_id, "account"), body.amount, body.channel, body.scene,
        body.wallet, body.payer_openid, idempotency_key=key), who)
    catch_up()
    return JSONResponse(order_body(order), status_code=201)


@router.get("/payments/orders/{out_trade_no}", summary="A payment order",
             **allow("payments.read"))
def get_order(out_trade_no: str, payments: Payments) -> dict[str, Any]:
    return order_body(payments.get_payment_order(out_trade_no))


@router.post("/payments/orders/{out_trade_no}/refunds", status_code=201,
             summary="Refund a paid order to the channel it came from",
             **allow("money.refund"))
def refund_order(out_trade_no: str, body: RefundIn, payments: Payments, catch_up: ReadModels,
                 who: Annotated[dict, Depends(actor)],
                 key: Annotated[str, Depends(required_idempotency_key)]) -> JSONResponse:
    order = payments.carry_out_refund(RefundPayment(out_trade_no, body.amount, body.reason,
                                                    idempotency_key=key), who)
    catch_up()
    return JSONResponse(order_body(order), status_code=201)


@router.post("/payments/reconciliations",
             summary="Reconcile a provider's daily bill (CSV) with the credited orders",
             **allow("reconciliation", "global", openapi_extra={"requestBody": {"content": {
                 "text/csv": {"schema": {"type": "string"}}}}}))
async def reconciliation(request: Request, reports: Reports, catch_up: ReadModels,
                         channel: Literal["wechat", "alipay"],
                         format: str | None = None) -> Response:
    from adapters.payments.bills import parse_alipay_account_bill, parse_wechat_trade_bill
    from api.formats import report_format, report_response
    fmt = report_format(request, format)
    data = await request.body()
    parse = parse_wechat_trade_bill if channel == "wechat" else parse_alipay_account_bill
    try:
        lines = parse(data)  # InvalidRequest -> 422
    except (csv.Error, ValueError) as error:
        raise ApiProblem(422, "unreadable-bill", f"the bill cannot be read: {error}") from None
    await run_in_threadpool(catch_up)
    report = await run_in_threadpool(reports.reconcile, channel, lines)
    categories = ("matched", "paid_not_credited", "amount_differs",
                  "credited_unknown_to_provider")
    rows = [{"category": c, "out_trade_no": r["out_trade_no"],
             "transaction_id": r["transaction_id"],
             "bill_amount": render.yuan(r["bill_amount_fen"]),
             "order_amount": render.yuan(r["order_amount_fen"]), "paid_at": r["paid_at"],
             "order_status": r["order_status"]} for c in categories for r in report[c]]
    summary = {"channel": channel, "days": report["days"],
               "bill_payments": report["bill_payments"],
               "bill_refunds": report["bill_refunds"],
               **{c: len(report[c]) for c in categories}}
    return report_response("reconciliation", ["category", "out_trade_no", "transaction_id",
                                              "bill_amount", "order_amount", "paid_at",
                                              "order_status"], rows, fmt, summary)


# -- notifications: authenticated by the providers' signatures, not by operators ---------

def _wechat_answer(status: int, message: str | None = None) -> Response:
    if status < 300:
        return Response(status_code=204)
    return JSONResponse({"code": "FAIL", "message": message or "failed"}, status_code=status)


@router.post("/payments/wechat/notify", summary="WeChat Pay API v3 notification",
             **allow(PUBLIC))
async def wechat_notify(request: Request, payments: Payments, config: Config) -> Response:
    raw = await request.body()
    provider = payments.providers.get("wechat")
    if provider is None:
        return _wechat_answer(503, "WeChat Pay is not configured here")
    return await _handle(payments, config, "wechat", request.headers, raw,
                         lambda: provider.parse_notification(request.headers, raw))


@router.post("/payments/alipay/notify", summary="Alipay asynchronous notification",
             **allow(PUBLIC))
async def alipay_notify(request: Request, payments: Payments, config: Config) -> Response:
    raw = await request.body()
    provider = payments.providers.get("alipay")
    if provider is None:
        return PlainTextResponse("failure", status_code=503)
    try:
        form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
    except (UnicodeDecodeError, ValueError):
        form = None
    parse = (lambda: provider.parse_notification(form)) if form is not None else \
        (lambda: (_ for _ in ()).throw(UnverifiedNotification("not a form body")))
    return await _handle(payments, config, "alipay", request.headers, raw, parse)


async def _handle(payments: PaymentService, config: Settings, provider: str, headers,
                  raw: bytes, parse) -> Response:
    """Verify, then credit; answer only after the credit is committed.

    The checks are CPU work of well under a millisecond and run on the event loop. A
    payment goes to the group committer without a thread of its own: the order and its
    account are read with the rest of the batch, and the answer waits for the commit.
    """
    def answer(ok: bool, retry_status: int = 500, message: str = "") -> Response:
        if provider == "wechat":
            return _wechat_answer(204 if ok else retry_status, message)
        return PlainTextResponse("success" if ok else "failure",
                                 status_code=200 if ok else retry_status)

    def reject(reason: str) -> None:
        payments.carry_out_rejection(RecordRejectedNotification(
            provider, reason,
            {k.lower(): v[:MAX_SIGNATURE_HEADER_CHARS] for k, v in headers.items()
             if k.lower() in KEPT_HEADERS}, raw, config.notification_excerpt_bytes))

    try:
        notice = parse()
    except UnverifiedNotification as refused:
        # Forged or garbled: counted and refused, so a genuine one is delivered again;
        # never recorded, since anyone can send it.
        unverified_notifications.record(provider, refused.reason, refused.detail)
        return answer(False, 401, refused.reason)
    except NotificationRefused as refused:
        # Authentic but unusable: recorded (hash and a capped excerpt) for review; the
        # provider is told to stop unless it is worth delivering again.
        await run_in_threadpool(reject, refused.reason)
        return answer(False, 401, refused.reason) if refused.retry else answer(True)
    try:
        if notice.kind == "paid":
            payment = CreditPayment(provider, notice.out_trade_no, notice.transaction_id or "",
                                    notice.amount_fen or 0, notice.currency, notice.paid_at,
                                    "notification")
            future = payments.submit_credit(payment)
            if future is None:  # group commit is off
                await run_in_threadpool(payments.carry_out_credit, payment)
            else:
                await settled(future)
        elif notice.kind == "closed":
            await run_in_threadpool(payments.carry_out_close, ClosePaymentOrder(
                notice.out_trade_no, "closed by the provider"))
        elif notice.kind in ("refund_succeeded", "refund_failed") and notice.out_refund_no:
            await run_in_threadpool(payments.carry_out_settlement, SettleRefund(
                notice.out_trade_no, notice.out_refund_no,
                "succeeded" if notice.kind == "refund_succeeded" else "failed",
                notice.refund_id))
    except ConcurrencyLimitExceeded as error:
        # Transient: nothing was credited, so the provider must deliver it again.
        return answer(False, 503, error.detail)
    except DomainError as error:  # unknown order, wrong amount, ...: never credited
        await run_in_threadpool(reject, f"{error.code}: {error.detail}")
        return answer(True)
    except Exception:  # the database failed: nothing was acknowledged, deliver it again
        log.exception("a %s notification could not be recorded", provider)
        return answer(False, 500, "the notification could not be recorded; deliver it again")
    # No read-model catch-up here: the provider reads nothing back, and the credit is
    # already committed; the background projection picks it up within a poll interval.
    return answer(True)


async def settled(future: Future) -> Any:
    """The result of a committer's future, awaited on the event loop.

    Not ``asyncio.wrap_future``: if the client hangs up, cancelling the wrapper would
    cancel the committer's own future, whose command may already be in a batch being
    stored. Here only the waiting stops; the command goes on.
    """
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def transfer(done: Future) -> None:
        if waiter.cancelled():
            return
        error = done.exception()
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(done.result())

    future.add_done_callback(lambda done: loop.call_soon_threadsafe(transfer, done))
    return await waiter
