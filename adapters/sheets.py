"""Spreadsheets in and out: CSV and XLSX (openpyxl), as rows of text keyed by header.

Exports are opened by accountants in Excel, WPS or LibreOffice, which run a cell that
starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return before one) as a
formula. Every text cell written that starts so is prefixed with ``'`` and XLSX cells are
written as strings, so a shop or gateway named ``=HYPERLINK(...)`` stays text. Numbers
(including negative amounts such as ``-30.00``) are not text and stay as they are. Reading a
sheet drops that prefix again, so an exported sheet imports back unchanged.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE, WriteOnlyCell
from openpyxl import Workbook, load_workbook

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain decimal number: a spreadsheet reads it as that number, never as a formula.
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class SheetError(ValueError):
    pass


def neutralised(text: str) -> str:
    """Text a spreadsheet would run as a formula, prefixed with ``'``; numbers unchanged."""
    if text.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(text):
        return "'" + text
    return text


def _unneutralised(text: str) -> str:
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def read_sheet(data: bytes, fmt: str) -> list[tuple[int, dict[str, str]]]:
    """Rows as (sheet row number, {header: text}); the header is row 1."""
    if fmt == "csv":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise SheetError("the CSV file is not UTF-8") from None
        try:
            table = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as error:
            raise SheetError(f"the CSV file cannot be read: {error}") from None
    elif fmt == "xlsx":
        try:
            workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception:
            raise SheetError("the file is not a readable XLSX workbook") from None
        sheet = workbook.worksheets[0]
        table = [["" if v is None else _cell_text(v) for v in row]
                 for row in sheet.iter_rows(values_only=True)]
        workbook.close()
    else:
        raise SheetError(f"unknown sheet format {fmt!r}; csv or xlsx")
    if not table:
        raise SheetError("the sheet is empty")
    header = [h.strip() for h in table[0]]
    rows = []
    for number, values in enumerate(table[1:], start=2):
        if not any(str(v).strip() for v in values):
            continue
        rows.append((number, {h: (_unneutralised(str(values[i]).strip())
                                  if i < len(values) else "")
                              for i, h in enumerate(header) if h}))
    return rows


def write_sheet(columns: Sequence[str], rows: Iterable[dict], fmt: str,
                title: str = "sheet") -> bytes:
    if fmt == "csv":
        out = io.StringIO()
        # Rows end in CRLF (RFC 4180), so a cell holding a carriage return is quoted too.
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([_csv_cell(c) for c in columns])
        for row in rows:
            writer.writerow([_csv_cell(row.get(c)) for c in columns])
        return out.getvalue().encode("utf-8")
    if fmt == "xlsx":
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet(title[:31])
        sheet.append([_xlsx_cell(sheet, c) for c in columns])
        for row in rows:
            sheet.append([_xlsx_cell(sheet, row.get(c)) for c in columns])
        out = io.BytesIO()
        workbook.save(out)
        return out.getvalue()
    raise SheetError(f"unknown sheet format {fmt!r}; csv or xlsx")


def _csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralised(value)
    return value


def _xlsx_cell(sheet, value):
    """Text as a string cell (never a formula), without the control characters XLSX cannot
    hold; numbers as numbers."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return value
    cell = WriteOnlyCell(sheet, value=neutralised(ILLEGAL_CHARACTERS_RE.sub("", value)))
    cell.data_type = "s"
    return cell


def _cell_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
