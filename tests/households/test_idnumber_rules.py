"""Identity-number rules (GB 11643-1999): parsing, check character, masking (and the phone
mask), generation."""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from app.core import clock
from app.services.idnumber import (
    PROVINCE_CODES,
    IdNumberError,
    IdNumberInfo,
    check_char,
    generate_id_number,
    mask_id_number,
    parse_id_number,
)
from app.services.masking import mask_phone

TODAY = date(2024, 6, 15)


def full(first17: str) -> str:
    """Append the correct check character, so a case fails on exactly one rule."""
    return first17 + check_char(first17)


def reason_of(raw: str, today: date = TODAY) -> str:
    with pytest.raises(IdNumberError) as exc:
        parse_id_number(raw, today=today)
    return exc.value.reason


# --- check character -----------------------------------------------------------------------------


# Worked by hand: sum(digit * weight) % 11 indexes "10X98765432".
#   11010519491231002: 7+9+0+5+0+20+2+9+24+27+7+18+30+5+0+0+4 = 167, 167 % 11 = 2 -> "X"
#   44052418800101001: 28+36+0+25+16+16+2+8+48+0+0+9+0+5+0+0+2 = 195, 195 % 11 = 8 -> "4"
@pytest.mark.parametrize(
    ("first17", "expected"),
    [
        ("11010519491231002", "X"),
        ("44052418800101001", "4"),
        ("44052419800101001", "3"),
        ("11010119900307001", "1"),
        ("32010219851103002", "5"),
        ("00000000000000000", "1"),
    ],
)
def test_check_char(first17: str, expected: str) -> None:
    assert check_char(first17) == expected


@pytest.mark.parametrize(
    "bad",
    ["", "1101051949123100", "110105194912310021", "1101051949123100a", "１１０１０５１９４９１２３１００２"],
)
def test_check_char_rejects_non_17_digit_input(bad: str) -> None:
    with pytest.raises(ValueError, match="17 ASCII digits"):
        check_char(bad)


# --- valid numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "number", "area", "birth", "sex"),
    [
        ("11010519491231002X", "11010519491231002X", "110105", date(1949, 12, 31), "female"),
        ("440524198001010013", "440524198001010013", "440524", date(1980, 1, 1), "male"),
        ("110101199003070011", "110101199003070011", "110101", date(1990, 3, 7), "male"),
        ("320102198511030025", "320102198511030025", "320102", date(1985, 11, 3), "female"),
        ("650102200002290044", "650102200002290044", "650102", date(2000, 2, 29), "female"),
        # normalization: lowercase x, surrounding whitespace
        ("11010519491231002x", "11010519491231002X", "110105", date(1949, 12, 31), "female"),
        ("  11010519491231002X\n", "11010519491231002X", "110105", date(1949, 12, 31), "female"),
        ("\t11010519491231002x ", "11010519491231002X", "110105", date(1949, 12, 31), "female"),
    ],
)
def test_parse_valid(raw: str, number: str, area: str, birth: date, sex: str) -> None:
    assert parse_id_number(raw, today=TODAY) == IdNumberInfo(
        number=number, area_code=area, birth_date=birth, sex=sex
    )


def test_born_today_is_accepted() -> None:
    assert parse_id_number(full("11010520240615001"), today=TODAY).birth_date == TODAY


def test_today_defaults_to_the_real_date() -> None:
    assert parse_id_number("11010519491231002X").birth_date == date(1949, 12, 31)
    assert reason_of(full("11010529991231001"), today=clock.today()) == "birth date in the future"
    with pytest.raises(IdNumberError, match="future"):
        parse_id_number(full("11010529991231001"))


@pytest.mark.parametrize(
    ("digit17", "sex"),
    [(str(d), "male" if d % 2 else "female") for d in range(10)],
)
def test_sex_from_parity_of_17th_digit(digit17: str, sex: str) -> None:
    assert parse_id_number(full("1101051949123100" + digit17), today=TODAY).sex == sex


# --- rejected numbers ----------------------------------------------------------------------------

OLD_FORMAT = "15-digit old-format numbers are not accepted; use the 18-digit number"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        # check character
        ("110105194912310021", "wrong check character"),
        ("110105194912310020", "wrong check character"),
        ("440524198001010014", "wrong check character"),
        ("44052419800101001X", "wrong check character"),
        ("11010519491231003X", "wrong check character"),  # sex digit changed, check not updated
        # impossible dates (check character correct, so the date is the only fault)
        (full("11010519490230123"), "impossible birth date"),  # Feb 30
        (full("11010519490229123"), "impossible birth date"),  # Feb 29, 1949 not a leap year
        (full("11010519000229001"), "impossible birth date"),  # 1900 not a leap year
        (full("11010519491331002"), "impossible birth date"),  # month 13
        (full("11010519490031002"), "impossible birth date"),  # month 00
        (full("11010519490100002"), "impossible birth date"),  # day 00
        (full("11010519490431002"), "impossible birth date"),  # Apr 31
        (full("11010518991231002"), "impossible birth date"),  # 1899
        (full("11010500001231002"), "impossible birth date"),  # year 0
        # GB 11643 example from 1880: checksum fine, but before the 1900 floor
        ("440524188001010014", "impossible birth date"),
        # future
        (full("11010520240616001"), "birth date in the future"),
        (full("11010530000101001"), "birth date in the future"),
        # old 15-digit format
        ("110105491231002", OLD_FORMAT),
        ("  110105491231002  ", OLD_FORMAT),
        # lengths
        ("", "must be 18 characters"),
        ("   ", "must be 18 characters"),
        ("11010519491231002", "must be 18 characters"),  # 17
        ("11010519491231002X1", "must be 18 characters"),  # 19
        ("110105194912310021X", "must be 18 characters"),  # 19
        ("11010549123100X", "must be 18 characters"),  # 15 but not all digits
        ("1101051949 1231002X", "must be 18 characters"),  # inner space
        # letters / foreign characters in the body
        ("1101051949A231002X", "first 17 characters must be digits"),
        ("X1010519491231002X", "first 17 characters must be digits"),
        ("1101051949123100x2", "first 17 characters must be digits"),
        ("１１０１０５１９４９１２３１００２Ｘ", "first 17 characters must be digits"),  # full-width
        ("11010519491231002１", "last character must be a digit or X"),  # full-width last
        ("11010519491231002Y", "last character must be a digit or X"),
        ("11010519491231002Ｘ", "last character must be a digit or X"),  # full-width X
        ("110105194912310-2X", "first 17 characters must be digits"),
        # area
        (full("99010519491231002"), "unknown area code"),
        (full("00010519491231002"), "unknown area code"),
        (full("10010519491231002"), "unknown area code"),
        (full("72010519491231002"), "unknown area code"),
        (full("11000019491231002"), "unknown area code"),  # county part 0000
    ],
)
def test_parse_rejects(raw: str, reason: str) -> None:
    assert reason_of(raw) == reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        # area is checked before the date, the date before the check character
        ("990105194902301230", "unknown area code"),
        ("110105194902301230", "impossible birth date"),
        ("110105209912310020", "birth date in the future"),
        # format before everything
        ("99010519490230123Y", "last character must be a digit or X"),
    ],
)
def test_order_of_checks(raw: str, reason: str) -> None:
    assert reason_of(raw) == reason


def test_error_is_a_value_error_with_reason_as_message() -> None:
    with pytest.raises(ValueError, match="wrong check character") as exc:
        parse_id_number("110105194912310021", today=TODAY)
    assert isinstance(exc.value, IdNumberError)
    assert str(exc.value) == exc.value.reason


# --- province codes ------------------------------------------------------------------------------


def test_province_codes() -> None:
    assert len(PROVINCE_CODES) == 34
    assert {"11", "46", "50", "65", "71", "81", "82"} <= PROVINCE_CODES
    assert not {"00", "10", "20", "24", "47", "55", "66", "70", "72", "80", "83", "91", "99"} & PROVINCE_CODES


# --- masking -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("11010519491231002X", "1****************X"),
        ("440524198001010013", "4****************3"),
        ("12345678901", "1*********1"),
        ("12345678", "1******8"),
        ("1234567", "*******"),
        ("", ""),
    ],
)
def test_mask(number: str, masked: str) -> None:
    assert mask_id_number(number) == masked


def test_mask_of_18_characters_shows_only_the_first_and_last() -> None:
    """The birth date (7-14), the area (1-6) and the sequence (15-17) are all starred: lists
    show the birth date, sex and village beside the mask, so any of them left in gives more of
    the number back."""
    masked = mask_id_number("11010519491231002X")
    assert len(masked) == 18
    assert masked[1:17] == "*" * 16
    assert (masked[0], masked[-1]) == ("1", "X")


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("+8613812345678", "+86138****5678"),
        ("008613812345678", "0086138****5678"),
        ("073188123456", "073******456"),  # a landline with its area code
        ("88123456", "88****56"),
        ("12345", "1***5"),
        ("1234", "1**4"),
        ("123", "***"),
        ("+85212345678", "+85*******78"),
        ("12345678901234567890", "1234************7890"),
    ],
)
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize("digits", range(1, 21))
def test_a_masked_phone_never_shows_more_than_half_its_digits_but_for_a_mobile(digits: int) -> None:
    phone = "".join(str((7 * i + 3) % 10) for i in range(digits))  # no leading 1: not a mobile
    masked = mask_phone(phone)
    assert len(masked) == digits
    shown = sum(c != "*" for c in masked)
    assert shown <= digits // 2
    assert "*" in masked


# --- generator -----------------------------------------------------------------------------------

AREAS = ["110105", "440524", "650102", "710101", "810001", "820002", "330110"]
DATES = [
    date(1900, 1, 1),
    date(1949, 10, 1),
    date(1999, 12, 31),
    date(2000, 2, 29),
    date(2004, 2, 29),
    date(2023, 1, 31),
    TODAY,
]
SEXES = ["male", "female"]
SEQUENCES = [0, 1, 4, 5, 9, 10, 123, 250, 498, 499]


@pytest.mark.parametrize(("area", "birth"), list(itertools.product(AREAS, DATES)))
def test_generator_round_trips(area: str, birth: date) -> None:
    for sex, sequence in itertools.product(SEXES, SEQUENCES):
        number = generate_id_number(area_code=area, birth_date=birth, sex=sex, sequence=sequence)
        assert parse_id_number(number, today=TODAY) == IdNumberInfo(
            number=number, area_code=area, birth_date=birth, sex=sex
        )


@pytest.mark.parametrize(
    ("sex", "sequence", "seq_digits"),
    [
        ("female", 0, "000"),
        ("male", 0, "001"),
        ("female", 1, "002"),
        ("male", 1, "003"),
        ("female", 123, "246"),
        ("male", 123, "247"),
        ("female", 499, "998"),
        ("male", 499, "999"),
        ("female", 500, "000"),  # wraps
        ("male", 617, "235"),
    ],
)
def test_generator_sequence_digits(sex: str, sequence: int, seq_digits: str) -> None:
    number = generate_id_number(area_code="110105", birth_date=date(1949, 12, 31), sex=sex, sequence=sequence)
    assert number[14:17] == seq_digits


def test_generator_known_value() -> None:
    assert (
        generate_id_number(area_code="110105", birth_date=date(1949, 12, 31), sex="female", sequence=1)
        == "11010519491231002X"
    )


def test_generator_is_deterministic_and_unique_over_seeds() -> None:
    kw = {"area_code": "440524", "birth_date": date(2000, 2, 29)}
    for sex in SEXES:
        numbers = [generate_id_number(**kw, sex=sex, sequence=s) for s in range(500)]
        assert len(set(numbers)) == 500
        assert numbers == [generate_id_number(**kw, sex=sex, sequence=s) for s in range(500)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"area_code": "990105"}, "area code"),
        ({"area_code": "110000"}, "area code"),
        ({"area_code": "11010"}, "area code"),
        ({"area_code": "１１０１０５"}, "area code"),
        ({"birth_date": date(1899, 12, 31)}, "before 1900"),
        ({"sex": "M"}, "sex"),
        ({"sequence": -1}, "sequence"),
    ],
)
def test_generator_rejects_bad_input(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "area_code": "110105",
        "birth_date": date(1949, 12, 31),
        "sex": "male",
        "sequence": 1,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        generate_id_number(**args)
