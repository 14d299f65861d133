"""The at-rest scan that ``clean_db`` runs after every test: it sees an ID number or a mobile
number wherever it stands in a text, and not the masks, digests, cipher texts and area codes
that are meant to be stored."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import date

from app.services.idnumber import check_char
from tests.conftest import plaintext_findings
from tests.factories import id_number


def test_the_scan_sees_numbers_and_not_what_may_be_stored():
    number = id_number(date(1990, 4, 5), "female")
    wrong = number[:17] + next(c for c in "0123456789X" if c != check_char(number[:17]))
    rows = [
        ("visit.notes", f"她的身份证{number}，已核实"),
        ("sync_op.result", f'{{"id_number": "{number.lower()}"}}'),
        ("household.address", "团头湖村5组，电话13912345678"),
        ("person.id_number_masked", number[0] + "*" * 16 + number[-1]),
        ("person.id_number_masked", number[:6] + "*" * 8 + number[-4:]),
        ("migrant.phone_masked", "139****5678"),
        ("person.id_number_hash", hashlib.sha256(number.encode()).hexdigest()),
        ("person.id_number_enc", "f1:" + base64.b64encode(os.urandom(40)).decode()),
        ("area.code", "430122100201"),
        ("claim.reference", wrong),
        ("task.title", "19912345678901"),  # 14 digits: not a mobile number
    ]
    assert plaintext_findings(rows) == [
        "household.address: phone",
        "sync_op.result: id_number",
        "visit.notes: id_number",
    ]
