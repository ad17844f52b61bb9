"""Validation of an import file: every entry checked, every problem named, before anything
is written (`parse_file`)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from collections.abc import Callable, Hashable, Iterable
from decimal import Decimal
from typing import Any, TypeVar

from email_validator import validate_email

from billing_app.billing_email.addresses import MAX_LENGTH as EMAIL_MAX_LENGTH
from billing_app.billing_email.addresses import normalise
from billing_app.figures.months import Month
from billing_app.importer.schema import (
    AMOUNT,
    CONTROL,
    CURRENCY,
    DATE,
    GUID,
    MAX_PROBLEMS,
    ROLES,
    SLUG,
    TENANT_ID,
    TENANT_ID_RULE,
    UNIT_PRICE_DECIMALS,
    UNIT_PRICE_LIMIT,
    DateRange,
    IdentityData,
    ImportFile,
    InvalidImportFile,
    MemberData,
    OrganisationData,
    PriceData,
    TenantData,
)

T = TypeVar("T")


def quote(value: str) -> str:
    shown = value if len(value) <= 60 else value[:57] + "..."
    return json.dumps(shown, ensure_ascii=False)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class Refusals:
    """The problems found so far, each prefixed with the entry it is about."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.more = 0

    def add(self, where: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{where}: {message}")
        else:
            self.more += 1

    def raise_any(self) -> None:
        if self.problems:
            raise InvalidImportFile(self.problems, self.more)

    def unique(
        self,
        items: list,
        path: str,
        key_name: str,
        parse: Callable[[Refusals, str, object], T | None],
        seen: dict[Hashable, str] | None = None,
    ) -> list[T]:
        """The entries of the array at `path` that parse; one whose key (`key_name`) an earlier
        entry, or one in `seen`, already used is refused."""
        seen = {} if seen is None else seen
        kept: list[T] = []
        for index, item in enumerate(items):
            where = _labelled(f"{path}[{index}]", item, key_name)
            value = parse(self, where, item)
            if value is None:
                continue
            if value.key in seen:
                self.add(where, f"duplicate {key_name}, also used by {seen[value.key]}")
            seen.setdefault(value.key, where)
            kept.append(value)
        return kept


class _Entry:
    """One object of the file, read field by field; a bad field is refused with its path."""

    def __init__(
        self, refusals: Refusals, where: str, value: object, fields: Iterable[str]
    ) -> None:
        self.refusals = refusals
        self.where = where
        self.failed = False
        self.is_object = isinstance(value, dict)
        if isinstance(value, dict):
            self.data: dict[str, Any] = value
            for key in value:
                if key not in fields:
                    self.refuse(f"unknown field {quote(str(key))}")
        else:
            self.data = {}
            self.refuse(f"must be an object, not {_json_type(value)}")

    def refuse(self, message: str) -> None:
        self.failed = True
        self.refusals.add(self.where, message)

    def raw(self, key: str, required: bool = False) -> Any:
        """The field's JSON value; a required one that is absent or null is refused."""
        value = self.data.get(key)
        if value is None and required and self.is_object:
            if key in self.data:
                self.refuse(f'"{key}" must not be null')
            else:
                self.refuse(f'missing required field "{key}"')
        return value

    def text(self, key: str, *, max_length: int, required: bool = True) -> str | None:
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, str):
            self.refuse(f'"{key}" must be a string, not {_json_type(value)}')
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.refuse(f'"{key}" is not valid Unicode')
            return None
        if not value.strip():
            self.refuse(f'"{key}" must not be empty')
        elif CONTROL.search(value):
            self.refuse(f'"{key}" {quote(value)} contains a control character')
        elif len(value) > max_length:
            self.refuse(f'"{key}" is longer than {max_length} characters')
        else:
            return value
        return None

    def matching(
        self, key: str, pattern: re.Pattern[str], expected: str, *, max_length: int
    ) -> str | None:
        value = self.text(key, max_length=max_length)
        if value is not None and not pattern.fullmatch(value):
            self.refuse(f'"{key}" {quote(value)} is not {expected}')
            return None
        return value

    def _converted(
        self, key: str, value: str | None, convert: Callable[[str], T], problem: str, why: bool
    ) -> T | None:
        """`convert(value)`, or a refusal saying the value `problem` (and why, with `why`)."""
        if value is None:
            return None
        try:
            return convert(value)
        except ValueError as error:
            reason = f": {error}" if why else ""
            self.refuse(f'"{key}" {quote(value)} {problem}{reason}')
            return None

    def _string(self, key: str, required: bool, kind: str) -> str | None:
        value = self.raw(key, required)
        if value is not None and not isinstance(value, str):
            self.refuse(f'"{key}" must be {kind}, not {_json_type(value)}')
            return None
        return value

    def email(self, key: str) -> str | None:
        normalized = self._converted(
            key,
            self.text(key, max_length=EMAIL_MAX_LENGTH),
            lambda value: validate_email(value, check_deliverability=False).normalized,
            "is not a valid email address",
            why=True,
        )
        if normalized is not None and len(normalized) > EMAIL_MAX_LENGTH:
            self.refuse(f'"{key}" is longer than {EMAIL_MAX_LENGTH} characters')
            return None
        return normalized

    def billing_email(self, key: str) -> str | None:
        """An address that the Usage page would accept as the billing email, normalised."""
        value = self.text(key, max_length=EMAIL_MAX_LENGTH)
        return self._converted(key, value, normalise, "is not accepted", why=True)

    def date(self, key: str, *, required: bool = True) -> dt.date | None:
        value = self._string(key, required, "a date string (YYYY-MM-DD)")
        return self._converted(key, value, _iso_date, "is not a date (YYYY-MM-DD)", why=False)

    def month(self, key: str) -> dt.date | None:
        value = self._string(key, True, "a month string (YYYY-MM)")
        first_day = lambda text: Month.parse(text).first_day  # noqa: E731
        return self._converted(key, value, first_day, "is not a month (YYYY-MM)", why=False)

    def amount(self, key: str) -> Decimal | None:
        value = self.raw(key, True)
        if value is None:
            return None
        if isinstance(value, float):
            example = f"{value:.2f}" if math.isfinite(value) else "3.00"
            self.refuse(
                f'"{key}" {value!r} is a JSON number with a fraction, which is not exact: '
                f'write it as a string, e.g. "{example}"'
            )
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.refuse(f'"{key}" must be a string such as "3.00", not {_json_type(value)}')
            return None
        text = str(value)
        if not AMOUNT.fullmatch(text):
            self.refuse(f'"{key}" {quote(text)} is not an amount such as "3.00"')
            return None
        amount = Decimal(text)
        if amount < 0:
            self.refuse(f'"{key}" {text} is negative')
        elif -amount.as_tuple().exponent > UNIT_PRICE_DECIMALS:  # type: ignore[operator]
            self.refuse(f'"{key}" {text} has more than {UNIT_PRICE_DECIMALS} decimal places')
        elif amount >= UNIT_PRICE_LIMIT:
            self.refuse(f'"{key}" {text} is too large')
        else:
            return amount
        return None

    def boolean(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            self.refuse(f'"{key}" must be true or false, not {_json_type(value)}')
            return None
        return value

    def array(self, key: str, *, required: bool = False) -> list[Any]:
        value = self.raw(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            self.refuse(f'"{key}" must be an array, not {_json_type(value)}')
            return []
        return value


def _iso_date(text: str) -> dt.date:
    """A date written exactly as YYYY-MM-DD."""
    if not DATE.fullmatch(text):
        raise ValueError(text)
    return dt.date.fromisoformat(text)


def _labelled(where: str, value: object, key: str) -> str:
    """`where`, followed by the entry's own id when it has a string one."""
    if isinstance(value, dict) and isinstance(value.get(key), str):
        return f"{where} ({key} {quote(value[key])})"
    return where


def _range(refusals: Refusals, where: str, value: object) -> DateRange | None:
    entry = _Entry(refusals, where, value, ("from", "until"))
    start = entry.date("from")
    until = entry.date("until", required=False)
    if start is not None and until is not None and until <= start:
        entry.refuse(f'"until" {until} is not after "from" {start}')
    return None if entry.failed or start is None else (start, until)


def _ranges(refusals: Refusals, entry: _Entry, key: str) -> tuple[DateRange, ...]:
    ranges = (
        _range(refusals, f"{entry.where} {key}[{index}]", value)
        for index, value in enumerate(entry.array(key))
    )
    return tuple(item for item in ranges if item is not None)


def _organisation(refusals: Refusals, value: object) -> OrganisationData | None:
    entry = _Entry(
        refusals,
        "organisation",
        value,
        ("slug", "name", "billing_email", "stripe_customer_id", "portal_direct_access", "prices"),
    )
    slug = entry.matching(
        "slug", SLUG, "a slug (lowercase letters, digits and single hyphens)", max_length=100
    )
    name = entry.text("name", max_length=200)
    billing_email = entry.billing_email("billing_email")
    stripe_customer_id = entry.text("stripe_customer_id", max_length=255, required=False)
    portal_direct_access = entry.boolean("portal_direct_access")
    prices = refusals.unique(entry.array("prices"), "organisation.prices", "from_month", _price)
    if entry.failed or not (slug and name and billing_email):
        return None
    return OrganisationData(
        slug, name, billing_email, stripe_customer_id, portal_direct_access, tuple(prices)
    )


def _price(refusals: Refusals, where: str, value: object) -> PriceData | None:
    entry = _Entry(refusals, where, value, ("from_month", "unit_price", "currency"))
    from_month = entry.month("from_month")
    unit_price = entry.amount("unit_price")
    currency = entry.matching(
        "currency", CURRENCY, "a three-letter currency code such as usd", max_length=100
    )
    if entry.failed or from_month is None or unit_price is None or currency is None:
        return None
    return PriceData(from_month, unit_price, currency.lower())


def _member(refusals: Refusals, where: str, value: object) -> MemberData | None:
    entry = _Entry(refusals, where, value, ("email", "name", "role", "password"))
    email = entry.email("email")
    name = entry.text("name", max_length=200)
    role = entry.text("role", max_length=100)
    if role is not None and role not in ROLES:
        entry.refuse(f'"role" {quote(role)} is not one of {", ".join(ROLES)}')
    password = entry.raw("password")
    if password is not None and (not isinstance(password, str) or not password):
        entry.refuse('"password" must be a non-empty string')
    elif password is not None and len(password) > 1024:
        entry.refuse('"password" is longer than 1024 characters')
    if entry.failed or email is None or name is None or role is None:
        return None
    return MemberData(where, email, name, role, password)


def _tenant(
    refusals: Refusals, where: str, value: object, identity_ids: dict[str, str]
) -> TenantData | None:
    entry = _Entry(
        refusals,
        where,
        value,
        (
            "id",
            "name",
            "microsoft_tenant_id",
            "onboarded_on",
            "offboarded_on",
            "pauses",
            "identities",
        ),
    )
    external_id = entry.matching("id", TENANT_ID, TENANT_ID_RULE, max_length=100)
    name = entry.text("name", max_length=500)
    microsoft_tenant_id = entry.matching(
        "microsoft_tenant_id",
        GUID,
        "a GUID such as 00000000-0000-0000-0000-000000000001",
        max_length=100,
    )
    onboarded_on = entry.date("onboarded_on")
    offboarded_on = entry.date("offboarded_on", required=False)
    if onboarded_on and offboarded_on and offboarded_on <= onboarded_on:
        entry.refuse(f'"offboarded_on" {offboarded_on} is not after "onboarded_on" {onboarded_on}')
    pauses = _ranges(refusals, entry, "pauses")
    identities = refusals.unique(
        entry.array("identities"), f"{where} identities", "id", _identity, seen=identity_ids
    )
    if entry.failed or not (external_id and name and microsoft_tenant_id and onboarded_on):
        return None
    return TenantData(
        external_id,
        name,
        microsoft_tenant_id.lower(),
        onboarded_on,
        offboarded_on,
        sorted_ranges(pauses),
        tuple(identities),
    )


def _identity(refusals: Refusals, where: str, value: object) -> IdentityData | None:
    entry = _Entry(
        refusals, where, value, ("id", "display_name", "user_principal_name", "billable_periods")
    )
    external_id = entry.text("id", max_length=100)
    display_name = entry.text("display_name", max_length=500)
    user_principal_name = entry.text("user_principal_name", max_length=500)
    periods = _ranges(refusals, entry, "billable_periods")
    if entry.failed or not (external_id and display_name and user_principal_name):
        return None
    return IdentityData(external_id, display_name, user_principal_name, sorted_ranges(periods))


def sorted_ranges(ranges: Iterable[DateRange]) -> tuple[DateRange, ...]:
    """Date ranges in a canonical order, so that lists can be compared."""
    return tuple(sorted(ranges, key=lambda r: (r[0], r[1] is None, r[1] or r[0])))


def parse_file(data: object) -> ImportFile:
    """Check a whole import file, returning it validated or raising `InvalidImportFile`."""
    refusals = Refusals()
    top = _Entry(refusals, "file", data, ("organisation", "members", "tenants"))
    if not top.is_object:
        refusals.raise_any()
    organisation_value = top.raw("organisation", required=True)
    organisation = None
    if organisation_value is not None:
        organisation = _organisation(refusals, organisation_value)

    members = refusals.unique(top.array("members"), "members", "email", _member)
    tenant = functools.partial(_tenant, identity_ids={})
    tenants = refusals.unique(top.array("tenants"), "tenants", "id", tenant)

    refusals.raise_any()
    assert organisation is not None
    return ImportFile(organisation, tuple(members), tuple(tenants))
