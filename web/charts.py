"""Charts drawn on the server as SVG: bars for consumption and sales per day or month."""

from __future__ import annotations

from decimal import Decimal
from xml.sax.saxutils import escape

from markupsafe import Markup


def bars(points: list[tuple[str, Decimal | float | int]], *, unit: str = "",
         width: int = 640, height: int = 200, label: str = "") -> Markup:
    """A bar per (label, value); the axis starts at zero. Empty data draws an empty frame."""
    pad_left, pad_bottom, pad_top = 48, 28, 12
    plot_w, plot_h = width - pad_left - 8, height - pad_bottom - pad_top
    top = max((float(v) for _, v in points), default=0.0) or 1.0
    step = plot_w / max(len(points), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'class="chart" role="img" aria-label="{escape(label)}">',
             f'<line x1="{pad_left}" y1="{pad_top + plot_h}" x2="{width - 8}" '
             f'y2="{pad_top + plot_h}" class="axis"/>',
             f'<text x="{pad_left - 4}" y="{pad_top + 8}" class="tick" text-anchor="end">'
             f'{_short(top)}</text>',
             f'<text x="{pad_left - 4}" y="{pad_top + plot_h}" class="tick" '
             f'text-anchor="end">0</text>']
    every = max(1, len(points) // 8)
    for i, (name, value) in enumerate(points):
        h = plot_h * float(value) / top if float(value) > 0 else 0
        bar = min(step * 0.7, 48)
        x = pad_left + i * step + (step - bar) / 2
        parts.append(f'<rect x="{x:.1f}" y="{pad_top + plot_h - h:.1f}" '
                     f'width="{bar:.1f}" height="{h:.1f}" class="bar">'
                     f'<title>{escape(str(name))}: {escape(str(value))} {escape(unit)}</title>'
                     f'</rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 8}" class="tick" '
                         f'text-anchor="middle">{escape(str(name)[-5:])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _short(value: float) -> str:
    if value >= 10000:
        return f"{value / 1000:.0f}k"
    return f"{value:.0f}" if value >= 10 else f"{value:.2f}"


def qr_svg(data: str, scale: int = 4) -> Markup:
    """A QR code as inline SVG (the tenant link, WeChat Pay's code_url)."""
    import io

    import segno

    out = io.BytesIO()
    segno.make(data, error="m").save(out, kind="svg", scale=scale, xmldecl=False,
                                     svgns=True, nl=False)
    return Markup(out.getvalue().decode())
