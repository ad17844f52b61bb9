"""The forms of the API tokens section: create a token (name, scopes, expiry) and revoke one
(nothing but its CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField, ValidationError
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from billing_app.api_tokens.service import NAME_LENGTH, SCOPES

SCOPE_LABELS = {
    "usage:read": "Usage (months, tenants, users)",
    "invoices:read": "Invoices",
}
EXPIRY_CHOICES = [
    SelectChoice("30", "30 days"),
    SelectChoice("90", "90 days"),
    SelectChoice("365", "365 days"),
    SelectChoice("", "Never"),
]


class TokenForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[
            InputRequired("Give the token a name, e.g. the tool that will use it."),
            Length(max=NAME_LENGTH, message=f"Keep the name to {NAME_LENGTH} characters."),
        ],
    )
    scopes = SelectMultipleField(
        "Access",
        choices=[SelectChoice(scope, SCOPE_LABELS[scope]) for scope in SCOPES],
        default=["usage:read"],
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validate_choice=False,
        validators=[InputRequired("Choose at least one kind of access.")],
    )
    expires_in_days = SelectField("Expires after", choices=EXPIRY_CHOICES, default="90")

    def validate_name(self, field) -> None:
        field.data = (field.data or "").strip()
        if not field.data:
            raise ValidationError("Give the token a name, e.g. the tool that will use it.")

    def validate_scopes(self, field) -> None:
        if set(field.data or ()) - set(SCOPES):
            raise ValidationError("Choose from the kinds of access listed.")

    @property
    def expiry_days(self) -> int | None:
        return int(self.expires_in_days.data) if self.expires_in_days.data else None


class RevokeForm(FlaskForm):
    """Revoking carries nothing but the CSRF token; the token is in the address."""
