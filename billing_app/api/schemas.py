"""The API's shapes as pydantic models: the OpenAPI document is generated from them (by
spectree), and the query models check the parameters of each request."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DECIMAL = r"^-?[0-9]+\.[0-9]+$"
DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
MONTH = r"^[0-9]{4}-[0-9]{2}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListQuery(Strict):
    """The query of every list."""

    limit: int = Field(100, ge=1, le=1000, description="Rows per page, 1 to 1000.")
    cursor: str | None = Field(
        None, description="Where the page starts: taken from `next` of the page before."
    )


class UsersQuery(ListQuery):
    tenant_id: str | None = Field(
        None, max_length=100, description="Only this tenant's users (the import file's id)."
    )


class ErrorDetail(BaseModel):
    type: str = Field(description="What kind of error: `invalid_request`, `unauthorized`, …")
    message: str = Field(description="What went wrong and what to do, for people.")


class Error(BaseModel):
    """Every error the API answers."""

    error: ErrorDetail


class Month(BaseModel):
    month: str = Field(pattern=MONTH)
    billable_users: int
    prorated_units: str = Field(pattern=DECIMAL)
    unit_price: str = Field(pattern=DECIMAL)
    currency: str
    prorated_cost: str = Field(pattern=DECIMAL)
    month_to_date: bool
    projected_cost: str | None = Field(
        pattern=DECIMAL, description="The current month's projected cost; null for others."
    )


class Tenant(BaseModel):
    """A row of `tenants.csv`."""

    month: str = Field(pattern=MONTH)
    tenant_id: str
    tenant_name: str
    microsoft_tenant_id: str
    billable_users: int
    prorated_units: str = Field(pattern=DECIMAL)
    unit_price: str = Field(pattern=DECIMAL)
    currency: str
    prorated_cost: str = Field(pattern=DECIMAL)
    previous_billable_users: int | None
    previous_prorated_cost: str | None = Field(pattern=DECIMAL)


class User(BaseModel):
    """A row of `users.csv`."""

    month: str = Field(pattern=MONTH)
    tenant_id: str
    tenant_name: str
    microsoft_tenant_id: str
    identity_id: str
    display_name: str
    user_principal_name: str
    billable_from: str = Field(pattern=DAY)
    billable_to: str = Field(pattern=DAY)
    billable_days: int
    days_in_month: int
    prorated_units: str = Field(pattern=DECIMAL)
    unit_price: str = Field(pattern=DECIMAL)
    currency: str
    prorated_cost: str = Field(pattern=DECIMAL)


class Invoice(BaseModel):
    id: str
    number: str
    period_start: str = Field(pattern=DAY)
    period_end: str = Field(pattern=DAY)
    amount: str = Field(pattern=DECIMAL, description="In major units, e.g. `583.11`.")
    currency: str
    status: Literal["paid", "open", "overdue", "void", "uncollectible"]
    due_date: str | None = Field(pattern=DAY)


class _List(BaseModel):
    has_more: bool
    next: str | None = Field(description="The address of the next page; null on the last.")


class MonthList(_List):
    data: list[Month]


class TenantList(_List):
    data: list[Tenant]


class UserList(_List):
    data: list[User]


class InvoiceList(_List):
    data: list[Invoice]
