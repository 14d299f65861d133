"""Phone numbers as lists show them (``phone_masked``): pure rules, no I/O.

ID numbers are masked by ``idnumber.mask_id_number``. Lists, sync pulls, conflicts and the
answers to creates and updates carry masked phones; the full number is only in the audited
single-record GET (``GET /persons/{id}``, ``GET /migrants/{id}``).

The rule, for the normalized form stored (digits, maybe a leading ``+``; 5-20 digits):

- a mainland mobile (11 digits starting with ``1``, optionally after ``+86``/``86``/``0086``):
  the first 3 and the last 4 digits, ``138****5678`` (the form people know from bank slips);
- anything else (landlines with or without the area code, foreign numbers): the first ``k`` and
  the last ``k`` digits with ``k = min(4, n // 4)`` for ``n`` digits, so at most half the digits
  ever show (``073******678`` for a 12-digit landline, ``1***5`` for 5 digits, ``88****45``
  for 8); numbers of fewer than 4 digits are fully starred.

A masked phone is always returned under its own key (``phone_masked``), never under ``phone``,
so a client can never mistake it for the number and send it back.
"""

from __future__ import annotations

__all__ = ["mask_phone"]

_MOBILE_PREFIXES = ("+86", "0086", "86")


def _mask_mobile(mobile: str) -> str:
    return mobile[:3] + "****" + mobile[-4:]


def _is_mobile(digits: str) -> bool:
    return len(digits) == 11 and digits.startswith("1") and digits.isdigit()


def mask_phone(phone: str) -> str:
    """The display form of a stored phone number (see the module docstring for the rule)."""
    if _is_mobile(phone):
        return _mask_mobile(phone)
    for prefix in _MOBILE_PREFIXES:
        if phone.startswith(prefix) and _is_mobile(phone[len(prefix) :]):
            return prefix + _mask_mobile(phone[len(prefix) :])
    sign = "+" if phone.startswith("+") else ""
    digits = phone[len(sign) :]
    n = len(digits)
    keep = min(4, n // 4)
    if keep == 0:
        return sign + "*" * n
    return sign + digits[:keep] + "*" * (n - 2 * keep) + digits[-keep:]
