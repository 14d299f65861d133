"""Resident identity numbers (GB 11643-1999): pure rules, no I/O.

An 18-character number is laid out as::

    AAAAAA YYYYMMDD SSS C
    |      |        |   +-- check character, ISO 7064 MOD 11-2 ("0"-"9" or "X")
    |      |        +------ sequence; its last digit (index 16) is odd for men, even for women
    |      +--------------- birth date
    +---------------------- area code of the place of first registration

Only the 18-character form is accepted. The 15-digit form (1984-1999) has no check character and a
two-digit year, so it is refused with a message asking for the 18-digit number rather than
converted.

The area check is structural only: the first two digits must be a known province-level code and
the county part (digits 3-6) must not be "0000". Area codes are not looked up in any table, since
historic codes that no longer exist stay valid on old numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from app.core import clock

__all__ = [
    "PROVINCE_CODES",
    "IdNumberError",
    "IdNumberInfo",
    "check_char",
    "generate_id_number",
    "mask_id_number",
    "parse_id_number",
]

Sex = Literal["male", "female"]

#: Province-level codes: mainland provinces, autonomous regions and municipalities, plus 71
#: (Taiwan), 81 (Hong Kong) and 82 (Macao).
PROVINCE_CODES: frozenset[str] = frozenset(
    {
        "11", "12", "13", "14", "15",
        "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65",
        "71", "81", "82",
    }
)  # fmt: skip

#: ISO 7064 MOD 11-2 weights for the first 17 digits (2**(17-i) mod 11).
_WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
#: Check character indexed by (weighted sum mod 11).
_CHECK_CHARS = "10X98765432"

_MIN_BIRTH_YEAR = 1900

# re.ASCII so that \d does not match full-width or other Unicode digits.
_FIRST17_RE = re.compile(r"\d{17}", re.ASCII)
_LAST_RE = re.compile(r"[\dX]", re.ASCII)
_OLD_FORMAT_RE = re.compile(r"\d{15}", re.ASCII)
_AREA_RE = re.compile(r"\d{6}", re.ASCII)


class IdNumberError(ValueError):
    """An identity number failed validation; ``reason`` is a short human-readable message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason: str = reason


@dataclass(frozen=True)
class IdNumberInfo:
    """A validated identity number and the facts encoded in it."""

    number: str
    """Normalized number: 18 characters, surrounding whitespace removed, check "X" uppercase."""
    area_code: str
    """First 6 digits: area of first registration."""
    birth_date: date
    sex: Sex


def check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character for the first 17 digits of a number.

    Each digit is multiplied by its weight (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2), the
    products are summed, and ``sum % 11`` indexes into ``"10X98765432"``.
    """
    if not _FIRST17_RE.fullmatch(first17):
        raise ValueError("check_char needs exactly 17 ASCII digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def _area_ok(area: str) -> bool:
    return area[:2] in PROVINCE_CODES and area[2:6] != "0000"


def _sex_of(digit: str) -> Sex:
    return "male" if int(digit) % 2 == 1 else "female"


def parse_id_number(raw: str, *, today: date | None = None) -> IdNumberInfo:
    """Validate an 18-character identity number and decode it.

    Surrounding whitespace is stripped and a lowercase check ``x`` is accepted and normalized to
    ``X``. Checks run in this order, and the first failure raises :class:`IdNumberError`:

    1. format: 15 digits is the old format and refused; anything else must be 18 characters, the
       first 17 ASCII digits (full-width digits are rejected) and the last a digit or ``X``;
    2. area: province code in :data:`PROVINCE_CODES` and county part (digits 3-6) not ``0000``;
    3. birth date: a real calendar date ``YYYYMMDD``, year >= 1900, not after ``today``
       (default: ``clock.today()``, the business date);
    4. check character (ISO 7064 MOD 11-2, see :func:`check_char`).

    Sex comes from the parity of the 17th digit: odd is male, even is female.
    """
    number = raw.strip()
    if _OLD_FORMAT_RE.fullmatch(number):
        raise IdNumberError("15-digit old-format numbers are not accepted; use the 18-digit number")
    if len(number) != 18:
        raise IdNumberError("must be 18 characters")
    number = number[:17] + number[17].upper()
    if not _FIRST17_RE.fullmatch(number[:17]):
        raise IdNumberError("first 17 characters must be digits")
    if not _LAST_RE.fullmatch(number[17]):
        raise IdNumberError("last character must be a digit or X")

    area_code = number[:6]
    if not _area_ok(area_code):
        raise IdNumberError("unknown area code")

    try:
        birth_date = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise IdNumberError("impossible birth date") from None
    if birth_date.year < _MIN_BIRTH_YEAR:
        raise IdNumberError("impossible birth date")
    if birth_date > (today if today is not None else clock.today()):
        raise IdNumberError("birth date in the future")

    if check_char(number[:17]) != number[17]:
        raise IdNumberError("wrong check character")

    return IdNumberInfo(number=number, area_code=area_code, birth_date=birth_date, sex=_sex_of(number[16]))


def mask_id_number(number: str) -> str:
    """Mask a number for display: keep the first and the last character, star the rest.

    An 18-character number becomes ``A****************C``: the province digit and the check
    character. Nothing wider is safe: lists show the birth date, sex and village (or hukou area)
    as fields of their own, so a mask that kept the area code (6) and the sequence (last 4) gave
    the whole number back once put beside them. With this mask the sequence stays hidden: even
    with the area guessed right, dozens of valid numbers fit an item's other fields. The length
    is kept. Strings shorter than 8 characters are fully starred, so a short string never leaks
    most of itself.
    """
    if len(number) < 8:
        return "*" * len(number)
    return number[0] + "*" * (len(number) - 2) + number[-1]


def generate_id_number(*, area_code: str, birth_date: date, sex: str, sequence: int) -> str:
    """Build a valid number, deterministically, for test factories and scale data.

    The 3-digit sequence is ``sequence * 2 % 1000``, plus one for a man, so its last digit is odd
    for ``"male"`` and even for ``"female"``. Distinct seeds 0..499 therefore give distinct numbers
    for the same area, date and sex; larger seeds wrap around (500 gives the same number as 0).

    Raises ``ValueError`` for a malformed or unknown area code, a birth year before 1900, an
    unknown sex or a negative sequence. The birth date is not compared to today.
    """
    if not _AREA_RE.fullmatch(area_code) or not _area_ok(area_code):
        raise ValueError(f"invalid area code {area_code!r}")
    if birth_date.year < _MIN_BIRTH_YEAR:
        raise ValueError(f"birth year before {_MIN_BIRTH_YEAR}: {birth_date.isoformat()}")
    if sex not in ("male", "female"):
        raise ValueError(f"sex must be 'male' or 'female', not {sex!r}")
    if sequence < 0:
        raise ValueError(f"sequence must be >= 0, not {sequence}")
    seq = sequence * 2 % 1000 + (1 if sex == "male" else 0)
    first17 = f"{area_code}{birth_date:%Y%m%d}{seq:03d}"
    return first17 + check_char(first17)
