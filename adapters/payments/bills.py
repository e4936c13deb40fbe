"""The providers' daily bills, read into plain lines for reconciliation.

- WeChat Pay trade bill (交易账单, ``bill_type=ALL``): CSV, every value prefixed with a
  backtick, amounts in yuan; summary lines after the rows.
- Alipay account bill (账务明细): CSV (often GBK), comment lines starting with ``#``,
  income and expense columns in yuan.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from domain.errors import InvalidAmount, InvalidRequest
from domain.money import yuan_text_to_fen

CHINA = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class BillLine:
    out_trade_no: str
    transaction_id: str
    kind: str  # payment or refund
    amount_fen: int
    at: datetime


def _text(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidRequest("the bill is neither UTF-8 nor GBK text")


def _fen(text: str, row: int) -> int:
    try:
        return yuan_text_to_fen(text.strip().lstrip("+").replace(",", "") or "0")
    except InvalidAmount:
        raise InvalidRequest(f"row {row}: amount {text!r} is not a yuan amount") from None


def _time(text: str) -> datetime:
    return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)


def parse_wechat_trade_bill(data: bytes) -> list[BillLine]:
    rows = list(csv.reader(io.StringIO(_text(data), newline="")))
    if not rows or "商户订单号" not in [c.strip() for c in rows[0]]:
        raise InvalidRequest("not a WeChat Pay trade bill: the header has no 商户订单号")
    header = [c.strip() for c in rows[0]]
    column = {name: header.index(name) for name in header}
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        values = [c.strip().lstrip("`") for c in row]
        if not values or not values[0] or values[0].startswith("总"):
            break  # the summary block
        try:
            status = values[column["交易状态"]]
            out_trade_no = values[column["商户订单号"]]
            transaction_id = values[column["微信订单号"]]
            at = _time(values[column["交易时间"]])
            if status == "REFUND":
                amount = _fen(values[column["退款金额"]], number)
                lines.append(BillLine(out_trade_no, transaction_id, "refund", amount, at))
            elif status == "SUCCESS":
                amount = _fen(values[column["应结订单金额"]], number)
                lines.append(BillLine(out_trade_no, transaction_id, "payment", amount, at))
        except (KeyError, IndexError, ValueError) as error:
            raise InvalidRequest(f"row {number}: {error}") from None
    return lines


def parse_alipay_account_bill(data: bytes) -> list[BillLine]:
    text = "\n".join(line for line in _text(data).splitlines() if not line.startswith("#"))
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or "商户订单号" not in [c.strip() for c in rows[0]]:
        raise InvalidRequest("not an Alipay account bill: the header has no 商户订单号")
    header = [c.strip() for c in rows[0]]
    income = next(i for i, c in enumerate(header) if c.startswith("收入金额"))
    expense = next(i for i, c in enumerate(header) if c.startswith("支出金额"))
    column = {name: header.index(name) for name in header}
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        values = [c.strip() for c in row]
        if len(values) <= max(income, expense) or not values[column["商户订单号"]]:
            continue
        kind = values[column.get("业务类型", income)]
        out_trade_no = values[column["商户订单号"]]
        transaction_id = values[column.get("业务流水号", 0)]
        at = _time(values[column["发生时间"]])
        if "手续费" in kind or "服务费" in kind:
            continue  # fees are not orders
        if _fen(values[income], number) > 0:
            lines.append(BillLine(out_trade_no, transaction_id, "payment",
                                  _fen(values[income], number), at))
        elif _fen(values[expense], number) != 0:
            lines.append(BillLine(out_trade_no, transaction_id, "refund",
                                  abs(_fen(values[expense], number)), at))
    return lines
