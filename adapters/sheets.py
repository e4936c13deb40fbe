"""Spreadsheets in and out: CSV and XLSX (openpyxl), as rows of text keyed by header."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl import Workbook, load_workbook

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_TYPE = "text/csv"


class SheetError(ValueError):
    pass


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
        rows.append((number, {h: (str(values[i]).strip() if i < len(values) else "")
                              for i, h in enumerate(header) if h}))
    return rows


def write_sheet(columns: Sequence[str], rows: Iterable[dict], fmt: str,
                title: str = "sheet") -> bytes:
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        return out.getvalue().encode("utf-8")
    if fmt == "xlsx":
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet(title[:31])
        sheet.append(list(columns))
        for row in rows:
            sheet.append([_xlsx_cell(row.get(c)) for c in columns])
        out = io.BytesIO()
        workbook.save(out)
        return out.getvalue()
    raise SheetError(f"unknown sheet format {fmt!r}; csv or xlsx")


def _xlsx_cell(value):
    """XLSX cannot hold control characters; they are dropped from text cells."""
    if value is None:
        return ""
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


def _cell_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
