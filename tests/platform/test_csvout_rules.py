"""The CSV writer's cells, as a table of cases (no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.core.csvout import cell, csv_text


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+86 138", "'+86 138"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("王桂兰", "王桂兰"),
        ("a=b", "a=b"),
        ("-12.50", "-12.50"),  # money as text: a plain number stays one
        ("+3", "+3"),
        (-3, -3),
        (-2.5, -2.5),
        (Decimal("-1.5"), Decimal("-1.5")),
        (None, ""),
        (True, "True"),
    ],
)
def test_cells(value, written):
    assert cell(value) == written


def test_the_file_has_a_bom_crlf_and_escapes_the_header_too():
    assert csv_text(["=a", "b"], [[1, "=x"], [None, "-1"]]) == "\ufeff'=a,b\r\n1,'=x\r\n,-1\r\n"
