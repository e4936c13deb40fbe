"""Receipts (三联单) for top-ups, refunds and account openings: HTML from a template the
property can replace (``PREPAID_RECEIPT_TEMPLATE``), and a one-page PDF with the three
copies (stub, customer, finance)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from string import Template

COPIES = (("存根 Stub", "stub"), ("客户联 Customer", "customer"), ("财务联 Finance", "finance"))

DEFAULT_TEMPLATE = Template("""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>$title</title>
<style>body{font-family:sans-serif}.copy{border:1px dashed #888;margin:12px;padding:12px}
td{padding:2px 12px}</style></head><body>
$copies
</body></html>""")
COPY = Template("""<div class="copy"><h2>$title · $copy</h2><table>
<tr><td>Receipt 编号</td><td>$transaction_id</td></tr>
<tr><td>Shop 户名</td><td>$account_name ($account_id)</td></tr>
<tr><td>Kind 类型</td><td>$kind</td></tr>
<tr><td>Wallet 钱包</td><td>$wallet</td></tr>
<tr><td>Amount 金额 (yuan)</td><td>$amount</td></tr>
<tr><td>Channel 方式</td><td>$channel</td></tr>
<tr><td>Balance after 余额</td><td>$balance_after</td></tr>
<tr><td>Time 时间</td><td>$effective_at</td></tr>
<tr><td>Operator 操作员</td><td>$operator</td></tr>
</table></div>""")


def receipt_html(fields: dict[str, str], template_path: str | None = None) -> str:
    safe = {k: escape(str(v)) for k, v in fields.items()}
    page = Template(Path(template_path).read_text(encoding="utf-8")) if template_path \
        else DEFAULT_TEMPLATE
    copies = "\n".join(COPY.safe_substitute(safe, copy=label) for label, _ in COPIES)
    return page.safe_substitute(safe, copies=copies)


def receipt_pdf(fields: dict[str, str]) -> bytes:
    """A plain one-page PDF (Helvetica, so ASCII text) with the three copies."""
    lines = []
    y = 800
    for _, copy in COPIES:
        lines.append((y, f"{fields['title']} - {copy} copy"))
        y -= 18
        for label, key in (("Receipt", "transaction_id"), ("Shop", "account_name"),
                           ("Kind", "kind"), ("Wallet", "wallet"), ("Amount (yuan)", "amount"),
                           ("Channel", "channel"), ("Balance after", "balance_after"),
                           ("Time", "effective_at"), ("Operator", "operator")):
            text = str(fields.get(key, "")).encode("ascii", "replace").decode()
            lines.append((y, f"{label}: {text}"))
            y -= 14
        y -= 24
    content = "BT /F1 11 Tf\n" + "".join(
        f"1 0 0 1 50 {ypos} Tm ({_pdf_text(text)}) Tj\n" for ypos, text in lines) + "ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content.encode())} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n"
            "%%EOF\n").encode()
    return bytes(out)


def _pdf_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
