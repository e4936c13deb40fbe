"""The console's server-side charts and languages."""

import re
from decimal import Decimal

from web.charts import bars, qr_svg
from web.i18n import pick_language, translator


def test_bars_are_svg_scaled_to_the_largest_value_and_escape_their_labels():
    svg = str(bars([("2026-03-01", Decimal("2.00")), ("<b>", Decimal("4.00"))], unit="kWh"))
    assert svg.startswith("<svg") and svg.count('class="bar"') == 2
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]
    assert heights[1] == 2 * heights[0]
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_an_empty_chart_is_an_empty_frame():
    svg = str(bars([]))
    assert "<svg" in svg and 'class="bar"' not in svg


def test_a_qr_code_is_inline_svg():
    svg = str(qr_svg("weixin://wxpay/bizpayurl?pr=abc"))
    assert svg.startswith("<svg") and "<path" in svg and "<script" not in svg


def test_chinese_browsers_get_chinese_unless_they_chose_otherwise():
    assert pick_language(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert pick_language(None, "en-US,en;q=0.9,zh;q=0.8") == "en"
    assert pick_language("en", "zh-CN") == "en"
    assert pick_language(None, None) == "en"
    assert translator("zh")("Balance") == "余额"
    assert translator("en")("arrears") == "Arrears"
