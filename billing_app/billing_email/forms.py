"""The billing email's edit form: the address typed, and what the form was opened with."""

from __future__ import annotations

import secrets

from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, ValidationError
from wtforms.validators import InputRequired, Length, Regexp

from billing_app.billing_email.addresses import InvalidEmail, normalise
from billing_app.billing_email.saving import Change, Outcome, Result

STALE_FORM = "This form is out of date. Reload the page and try again."


def new_nonce() -> str:
    """A fresh token for one opened form; a retried submission carries the same one."""
    return secrets.token_urlsafe(18)


class BillingEmailForm(FlaskForm):
    email = StringField("Billing email")
    opened_with = HiddenField(validators=[InputRequired(STALE_FORM), Length(max=254)])
    nonce = HiddenField(
        validators=[
            InputRequired(STALE_FORM),
            Length(max=64, message=STALE_FORM),
            Regexp(r"^[A-Za-z0-9_-]+$", message=STALE_FORM),
        ]
    )
    confirm_shared = HiddenField()

    normalised: str | None = None

    @classmethod
    def opened(cls, current: str) -> BillingEmailForm:
        """The form as an admin opens it: the current address, ready to edit."""
        return cls(formdata=None, email=current, opened_with=current, nonce=new_nonce())

    def validate_email(self, field) -> None:
        try:
            self.normalised = normalise(field.data)
        except InvalidEmail as error:
            raise ValidationError(str(error)) from None

    def change(self) -> Change:
        return Change(
            email=self.normalised,
            opened_with=self.opened_with.data,
            nonce=self.nonce.data,
            confirmed_shared=self.confirm_shared.data == self.normalised,
        )

    def reopen(self, result: Result) -> None:
        """After a conflict the form is based on the address now stored."""
        if result.outcome is Outcome.CONFLICT:
            self.opened_with.data = result.current
            self.nonce.data = new_nonce()
