"""Every CSV export goes through one writer (``app/core/csvout.py``): text a spreadsheet would
run as a formula is written as text, numbers stay numbers."""

from __future__ import annotations

import csv
import io

from tests.claims.test_api import elder, mk_claim, payee, programmes, staff, to_status  # noqa: F401
from tests.households.test_api import TS1

# Names anyone who registers a person or an area can type.
FORMULAS = ['=HYPERLINK("http://evil.example","点此")', "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)", "+1+1"]
CSV_ROUTES = {"/api/v1/claims/payments.csv", "/api/v1/indicators.csv"}


def test_every_csv_route_is_covered(app):
    """A new export must join the test below (and use the one writer)."""
    spec = app.openapi()
    found = {
        path
        for path, methods in spec["paths"].items()
        for op in methods.values()
        if "text/csv" in op.get("responses", {}).get("200", {}).get("content", {})
    }
    assert found == CSV_ROUTES


def _rows(r) -> list[list[str]]:
    assert r.status_code == 200, r.text
    assert r.content.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in r.content
    return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))


def _formula_cells(rows: list[list[str]]) -> list[str]:
    return [c for row in rows for c in row if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


async def test_formula_cells_are_escaped_in_every_csv(staff, db, client_as):  # noqa: F811
    admin = await client_as("admin", "430122000000")
    for i, name in enumerate(FORMULAS):
        r = await admin.post("/api/v1/areas", json={"code": f"43012210029{i}", "name": name})
        assert r.status_code == 201, r.text
    # payments.csv: the beneficiary (and so the payee) is called like a formula
    mother = await elder(staff.village, name=FORMULAS[0])
    claim = await mk_claim(staff.village, mother, payee=payee(FORMULAS[0]))
    await to_status(staff, db, claim["id"], "posted")

    en = {"Accept-Language": "en"}  # field names as headers
    payments = _rows(await staff.county.get("/api/v1/claims/payments.csv", headers=en))
    indicators = _rows(
        await staff.county.get(
            "/api/v1/indicators.csv", params={"area_code": TS1, "breakdown": "true"}, headers=en
        )
    )
    for rows in (payments, indicators):
        assert _formula_cells(rows) == []
    row = dict(zip(payments[0], payments[1], strict=True))
    assert (row["beneficiary_name"], row["payee_name"], row["amount"]) == (
        "'" + FORMULAS[0],
        "'" + FORMULAS[0],
        "960.00",
    )
    names = {r[1] for r in indicators[1:]}
    assert {"'" + f for f in FORMULAS} <= names
    by_name = {r[1]: dict(zip(indicators[0], r, strict=True)) for r in indicators[1:]}
    assert by_name["'" + FORMULAS[0]]["population"] == "0"  # numbers are written as numbers
