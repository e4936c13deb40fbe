"""Sheet cells a spreadsheet would run as formulas are written as text."""

from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from adapters.sheets import read_sheet, write_sheet

ROW = {"tab": "\t=1+1", "cr": "\r=1+1", "hidden": "\x01=1+1", "at": "@SUM(A1)",
       "plus": "+86 138 0000 0000", "minus": "-1+2", "dash": "-", "negative": "-30.00",
       "amount": "88.80", "integer": 5, "plain": "Tea House 茶餐厅"}
COLUMNS = list(ROW)


def test_csv_and_xlsx_cells_that_start_like_formulas_are_prefixed_numbers_are_not():
    table = list(csv.reader(io.StringIO(write_sheet(COLUMNS, [ROW], "csv").decode(),
                                        newline="")))
    assert dict(zip(table[0], table[1])) == {
        "tab": "'\t=1+1", "cr": "'\r=1+1", "hidden": "\x01=1+1", "at": "'@SUM(A1)",
        "plus": "'+86 138 0000 0000", "minus": "'-1+2", "dash": "'-", "negative": "-30.00",
        "amount": "88.80", "integer": "5", "plain": "Tea House 茶餐厅"}
    sheet = load_workbook(io.BytesIO(write_sheet(COLUMNS, [ROW], "xlsx"))).active
    got = {h.value: c for h, c in zip(sheet[1], sheet[2])}
    assert all(c.data_type == "s" for h, c in got.items() if h != "integer")
    assert got["integer"].data_type == "n" and got["integer"].value == 5
    # XLSX cannot hold \x01: it is dropped, and what is left is neutralised.
    assert got["hidden"].value == "'=1+1" and got["tab"].value == "'\t=1+1"
    assert got["negative"].value == "-30.00"


def test_reading_a_sheet_back_drops_the_prefix():
    for fmt in ("csv", "xlsx"):
        [(_, row)] = read_sheet(write_sheet(["name", "at"], [{"name": "=1+1", "at": "@x"}],
                                            fmt), fmt)
        assert row == {"name": "=1+1", "at": "@x"}
