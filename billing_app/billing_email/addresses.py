"""A billing email address as Petra accepts it: one plain address on one line, at most
254 characters, normalised; `InvalidEmail` says, for a person, what is wrong with another."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254


LINE_BREAKS = frozenset("\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029")


EXAMPLE = "billing@example.com"


class InvalidEmail(ValueError):
    """The address is not acceptable; the message says why, for a person."""


def normalise(raw: str | None) -> str:
    """The normalised address for `raw` as typed, or InvalidEmail saying what is wrong."""
    if raw is None or not raw.strip():
        raise InvalidEmail("Enter the billing email address.")
    if any(char in LINE_BREAKS for char in raw):
        raise InvalidEmail("Enter the address on a single line, without line breaks.")
    address = raw.strip()
    if len(address) > MAX_LENGTH:
        raise InvalidEmail(
            f"That address is {len(address)} characters long; "
            f"an email address has at most {MAX_LENGTH}."
        )
    if "<" in address or ">" in address:
        raise InvalidEmail(
            f"Enter only the address, without a name or angle brackets (like {EXAMPLE})."
        )
    if '"' in address:
        raise InvalidEmail(
            f"Addresses with quotation marks are not accepted. Use a plain address like {EXAMPLE}."
        )
    try:
        valid = validate_email(
            address,
            check_deliverability=False,
            allow_quoted_local=False,
            allow_display_name=False,
            allow_domain_literal=False,
        )
    except EmailNotValidError as error:
        raise InvalidEmail(_plain_reason(address, str(error))) from None
    if len(valid.normalized) > MAX_LENGTH:
        raise InvalidEmail(f"An email address has at most {MAX_LENGTH} characters.")
    return valid.normalized


def _plain_reason(address: str, validator_says: str) -> str:
    """Our own words for why `address` is not an email address; the validator's message
    (`validator_says`) only chooses among them and is never shown."""
    like = f"like {EXAMPLE}"
    if any(char.isspace() for char in address):
        return f"An email address cannot contain spaces. Remove them ({like})."
    if address.count("@") == 0:
        return f"An email address needs an @ between the name and the domain ({like})."
    if address.count("@") > 1:
        return f"An email address has only one @ ({like})."
    local, _, domain = address.partition("@")
    if not local:
        return f"Enter the part before the @ too ({like})."
    if not domain:
        return f"Enter the domain after the @ too ({like})."
    if ".." in address:
        return f"An email address cannot have two dots in a row ({like})."
    if "before the @-sign" in validator_says or "unsafe" in validator_says:
        return (
            "The part before the @ has a character an email address cannot contain, "
            f"such as a comma or a bracket ({like})."
        )
    if "." not in domain:
        return f"The domain after the @ needs a dot, as in example.com ({like})."
    return f"The domain after the @ is not one that can receive email ({like})."
