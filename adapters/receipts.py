"""Receipts (三联单) for top-ups, refunds and account openings: HTML from a template the
property can replace (``PREPAID_RECEIPT_TEMPLATE``), and a one-page A4 PDF with the three
copies (stub, customer, finance).

The PDF is set in ReportLab's STSong-Light, one of the Adobe CID fonts every PDF reader
ships or substitutes (Acrobat, Chrome, Firefox, Preview, poppler with poppler-data), so
Chinese prints without a font file of our own; the text stays searchable and copyable.
"""

from __future__ import annotations

import io
from datetime import datetime
from html import escape
from pathlib import Path
from string import Template
from typing import Any
from zoneinfo import ZoneInfo

COPIES = (("第一联 存根 Stub", "stub"), ("第二联 客户联 Customer", "customer"),
          ("第三联 财务联 Finance", "finance"))
FONT = "STSong-Light"
MAX_VALUE_LINES = 2  # a long shop name takes two lines; the copies must fit a third of A4

KINDS = {"top_up": "充值 top-up", "refund": "退费 refund", "reversal": "冲正 reversal",
         "gift": "赠送 gift", "consumption": "扣费 consumption",
         "common_area": "公摊 common area", "property_fee": "物业费 property fee",
         "adjustment": "调账 adjustment", "settlement": "结算 settlement",
         "open": "开户 account opening"}
WALLETS = {"electricity": "电费 electricity", "water": "水费 water",
           "property_fee": "物业费 property fee"}
CHANNELS = {"cash": "现金 cash", "bank": "银行转账 bank", "wechat": "微信支付 WeChat Pay",
            "alipay": "支付宝 Alipay"}

# (label, field) in the order they print, on every copy.
ROWS = (("收据编号 Receipt No.", "transaction_id"), ("商场 Site", "site_name"),
        ("户名 Shop", "account_name"), ("铺位 Unit", "unit"), ("类型 Kind", "kind"),
        ("钱包 Wallet", "wallet"), ("金额 Amount (元 yuan)", "amount"),
        ("方式 Channel", "channel"), ("余额 Balance after (元 yuan)", "balance_after"),
        ("时间 Time", "effective_at"), ("操作员 Operator", "operator"),
        ("账户 Account", "account_id"))

DEFAULT_TEMPLATE = Template("""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>$title</title>
<style>body{font-family:"Songti SC",SimSun,"Noto Serif CJK SC",serif}
.copy{border:1px dashed #888;margin:12px;padding:12px;page-break-inside:avoid}
td{padding:2px 12px}</style></head><body>
$copies
</body></html>""")
COPY = Template("<div class=\"copy\"><h2>$title · $copy</h2><table>\n" + "".join(
    f"<tr><td>{label}</td><td>${key}</td></tr>\n" for label, key in ROWS) + "</table></div>")


def label(table: dict[str, str], value: str | None) -> str:
    """A kind, wallet or channel as printed: Chinese and English, or the value itself."""
    if not value:
        return "-"
    return table.get(value, value)


def local_time(when: datetime | None, zone: ZoneInfo) -> str:
    """The site's wall clock to the second, and its offset: ``2026-03-02 08:00:00 (UTC+08:00)``.
    """
    if when is None:
        return "-"
    local = when.astimezone(zone)
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M:%S} (UTC{offset[:3]}:{offset[3:]})"


def actor_name(actor: dict[str, Any] | None, username_of=lambda _id: None) -> str:
    """Who acted, by name: an operator's username (looked up when the event has none), an
    API key's name, the console user; a policy or provider by its kind and id."""
    if not actor:
        return "-"
    kind, ident = actor.get("kind", ""), str(actor.get("id", ""))
    name = actor.get("name")
    if not name and kind in ("operator", "tenant"):
        name = username_of(ident)
    if not name:
        name = {"provider": label(CHANNELS, ident)}.get(kind, f"{kind}:{ident}")
    approver = actor.get("approved_by")
    if approver:
        name = f"{name} (审批 approved by {actor_name(approver, username_of)})"
    return str(name)


def receipt_html(fields: dict[str, str], template_path: str | None = None) -> str:
    safe = {k: escape(str(v)) for k, v in fields.items()}
    page = Template(Path(template_path).read_text(encoding="utf-8")) if template_path \
        else DEFAULT_TEMPLATE
    copies = "\n".join(COPY.safe_substitute(safe, copy=copy) for copy, _ in COPIES)
    return page.safe_substitute(safe, copies=copies)


def receipt_pdf(fields: dict[str, str]) -> bytes:
    """One A4 page: the three copies, one above the other, with cut lines between them."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    width, height = A4
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4, invariant=1, pageCompression=1)
    page.setTitle(f"{fields.get('title', '')} {fields.get('transaction_id', '')}")
    page.setCreator("prepaid-ledger")
    third = height / 3
    left, value_x, size, line = 48, 210, 10.5, 15
    for index, (copy, _) in enumerate(COPIES):
        top = height - index * third
        y = top - 40
        page.setFont(FONT, 14)
        page.drawString(left, y, str(fields.get("title", "")))
        page.setFont(FONT, 10.5)
        page.drawRightString(width - left, y, copy)
        y -= 26
        for text, key in ROWS:
            page.setFont(FONT, size)
            page.drawString(left, y, text)
            value = str(fields.get(key) or "-")
            for piece in _lines(value, size, width - left - value_x):
                page.drawString(value_x, y, piece)
                y -= line
        if index < len(COPIES) - 1:
            page.setDash(4, 3)
            page.setLineWidth(0.5)
            page.line(24, top - third, width - 24, top - third)
            page.setDash()
    page.showPage()
    page.save()
    return out.getvalue()


def _lines(text: str, size: float, width: float, most: int = MAX_VALUE_LINES) -> list[str]:
    """Text broken to the width character by character (Chinese has no spaces to break
    at), at most ``most`` lines; what does not fit ends in an ellipsis."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    lines, current = [], ""
    for char in text:
        if current and stringWidth(current + char, FONT, size) > width:
            lines.append(current)
            current = ""
        current += char
    lines.append(current)
    if len(lines) > most:
        lines = lines[:most]
        lines[-1] = lines[-1][:-1] + "…"
    return lines
