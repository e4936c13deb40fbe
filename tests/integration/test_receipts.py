"""Receipts (三联单) print Chinese, the site's local time to the second, the operator's name,
the shop's name and unit and amounts in yuan, in HTML and in the PDF.

The PDF's text is read back with pypdf, a PDF library independent of the one that writes
it (ReportLab), and the page is rendered to PNG with poppler's pdftoppm (installed by
scripts/system-deps) into var/test-artifacts/, for a person to look at."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.conftest import login

API = "/api/v1"
PAID_AT = datetime(2026, 3, 2, 6, 7, 8, 123456, tzinfo=timezone.utc)
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"


def ok(response, status=201):
    assert response.status_code == status, response.text
    return response.json()


def shop_at(client, *, timezone_name="Asia/Shanghai", name="茶餐厅 Tea <House>"):
    site = ok(client.post(f"{API}/sites", json={"name": "天虹商场", "timezone": timezone_name}))
    ok(client.post(f"{API}/sites/{site['id']}/buildings", json={"code": "A", "name": "A座"}))
    ok(client.post(f"{API}/sites/{site['id']}/units",
                   json={"code": "1F-101", "building": "A", "floor": "1"}))
    return ok(client.post(f"{API}/accounts", json={"name": name, "site_id": site["id"],
                                                   "unit": "1F-101"}))["id"]


def top_up_as_cashier(client, platform, clock, shop, amount="88.80"):
    cashier = login(platform, "cashier-wang", "cashier-wang-password", roles=("finance",))
    clock.now = PAID_AT
    return ok(client.post(f"{API}/accounts/{shop}/top-ups",
                          json={"amount": amount, "channel": "cash"},
                          headers={**cashier, "Idempotency-Key": str(uuid.uuid4())}))


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(content))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


def render_png(content: bytes, name: str) -> Path:
    """The page as a PNG in var/test-artifacts/; poppler needs poppler-data and a CJK font
    for the Adobe-GB1 font the receipt uses (scripts/system-deps installs both)."""
    if shutil.which("pdftoppm") is None:
        if os.environ.get("CI"):
            pytest.fail("pdftoppm is missing: scripts/system-deps installs poppler-utils")
        pytest.skip("pdftoppm (poppler-utils) is not installed; run scripts/system-deps")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pdf = ARTIFACTS / f"{name}.pdf"
    pdf.write_bytes(content)
    done = subprocess.run(["pdftoppm", "-r", "110", "-png", "-singlefile", str(pdf),
                           str(ARTIFACTS / name)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # poppler says so on stderr when it cannot map the Chinese font (no poppler-data).
    assert "Missing language pack" not in done.stderr and "No font" not in done.stderr, \
        done.stderr
    return ARTIFACTS / f"{name}.png"


def test_a_top_up_receipt_prints_chinese_local_time_operator_unit_and_yuan(
        client, platform, clock, backend):
    shop = shop_at(client)
    sale = top_up_as_cashier(client, platform, clock, shop)
    cashier_id = str(platform.ledger.access.find_operator("cashier-wang").id)

    pdf = client.get(f"{API}/transactions/{sale['id']}/receipt", params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = pdf_text(pdf.content)
    for printed in ("茶餐厅 Tea <House>", "天虹商场", "1F-101 (A座 1层 floor)",
                    "2026-03-02 14:07:08 (UTC+08:00)", "cashier-wang",
                    "金额 Amount (元 yuan)\n88.80", "余额 Balance after (元 yuan)\n88.80",
                    "充值收据 Top-up receipt", "现金 cash", "电费 electricity", sale["id"]):
        assert text.count(printed) == 3, (printed, text)  # stub, customer, finance
    for copy in ("存根 Stub", "客户联 Customer", "财务联 Finance"):
        assert copy in text
    assert "??" not in text and "¶" not in text and cashier_id not in text
    assert "06:07:08" not in text and "123456" not in text  # not UTC, no microseconds

    html = client.get(f"{API}/transactions/{sale['id']}/receipt")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    page = html.text
    assert page.count("<td>茶餐厅 Tea &lt;House&gt;</td>") == 3 and "<House>" not in page
    assert page.count("<td>2026-03-02 14:07:08 (UTC+08:00)</td>") == 3
    assert page.count("<td>cashier-wang</td>") == 3 and cashier_id not in page
    assert page.count("<td>金额 Amount (元 yuan)</td><td>88.80</td>") == 3
    assert page.count("<td>1F-101 (A座 1层 floor)</td>") == 3

    image = render_png(pdf.content, f"receipt-top-up-{backend}")
    from PIL import Image
    with Image.open(image) as png:
        assert png.size[0] > 800 and png.getextrema()[0][0] < 100  # ink on the page


def test_times_follow_the_site_zone_and_the_opening_receipt_names_who_opened(
        client, platform, clock, backend):
    shop = shop_at(client, timezone_name="Asia/Urumqi", name="兰州拉面")
    sale = top_up_as_cashier(client, platform, clock, shop, amount="1234.50")
    text = pdf_text(client.get(f"{API}/transactions/{sale['id']}/receipt",
                               params={"format": "pdf"}).content)
    assert text.count("2026-03-02 12:07:08 (UTC+06:00)") == 3
    assert text.count("兰州拉面") == 3 and text.count("金额 Amount (元 yuan)\n1234.50") == 3

    opening = client.get(f"{API}/accounts/{shop}/receipt", params={"format": "pdf"})
    text = pdf_text(opening.content)
    assert text.count("开户凭证 Account opening") == 3 and text.count("兰州拉面") == 3
    assert text.count("test-admin") == 3  # the conftest admin opened the shop
    html = client.get(f"{API}/accounts/{shop}/receipt").text
    assert html.count("<td>test-admin</td>") == 3 and "(UTC+06:00)" in html
    render_png(opening.content, f"receipt-opening-{backend}")


def test_a_shop_without_a_site_prints_in_the_default_zone(client, platform, clock):
    shop = ok(client.post(f"{API}/accounts", json={"name": "便利店"}))["id"]
    sale = top_up_as_cashier(client, platform, clock, shop, amount="5.00")
    text = pdf_text(client.get(f"{API}/transactions/{sale['id']}/receipt",
                               params={"format": "pdf"}).content)
    assert text.count("2026-03-02 14:07:08 (UTC+08:00)") == 3 and text.count("便利店") == 3
