"""Northwind MSP, the demo organisation of `make run`: writes `northwind.json` beside this file.

Twenty customers of a managed service provider (law firms, dental practices, schools,
manufacturers, ...) with a year of history since January 2026: people join and leave over
the months, schools hire in September and lose staff in July, a school pauses over the summer,
an architects' practice is paused from mid-November, an insurance broker leaves in September,
new customers arrive during the year, and the price rises in July. Deterministic: the same
script writes the same file.

    python -m dev.demo.make_demo
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).with_name("northwind.json")
SEED = 2026
HISTORY_START = dt.date(2026, 1, 1)
HISTORY_END = dt.date(2026, 11, 30)
"""The last day on which anyone joins or leaves in the demo."""
MIN_USERS, MAX_USERS = 5, 150

PRICES = (
    {"from_month": "2026-01", "unit_price": "3.00", "currency": "usd"},
    {"from_month": "2026-07", "unit_price": "3.25", "currency": "usd"},
)
MEMBERS = (
    ("admin@northwind.example", "Ada Admin", "admin", "demo-admin"),
    ("member@northwind.example", "Max Member", "full_member", "demo-full_member"),
    ("finance@northwind.example", "Fiona Finance", "billing", "demo-billing"),
    ("guest@northwind.example", "Gus Guest", "external_guest", "demo-external_guest"),
)


@dataclass(frozen=True)
class Customer:
    name: str
    domain: str
    users: int
    """Licensed users when the year (or, for a new customer, its onboarding) starts."""
    onboarded_on: str
    kind: str = "office"
    """office, school or clinic: when people join and leave, and which shared mailboxes exist."""
    growth: float = 0.01
    """Net growth a month, as a share of the users."""
    offboarded_on: str | None = None
    pauses: tuple[tuple[str, str | None], ...] = ()


CUSTOMERS = (
    Customer("Harrow & Finch LLP", "harrowfinch.example", 42, "2024-03-04", growth=0.008),
    Customer("Brightsmile Dental Group", "brightsmiledental.example", 18, "2025-06-16", "clinic"),
    Customer("Oakridge Family Dentistry", "oakridgedental.example", 8, "2025-09-01", "clinic"),
    Customer("Kessler Precision Machining", "kesslerprecision.example", 86, "2024-11-11"),
    Customer(
        "St Aidan's Primary School",
        "staidans.example",
        54,
        "2025-02-03",
        "school",
        growth=0.0,
        pauses=(("2026-07-25", "2026-09-01"),),
    ),
    Customer("Maplewood High School", "maplewoodhigh.example", 128, "2024-08-26", "school", 0.0),
    Customer("Carver Whitlock Solicitors", "carverwhitlock.example", 27, "2025-04-07"),
    Customer("Riverside Veterinary Clinic", "riversidevets.example", 12, "2025-10-13", "clinic"),
    Customer("Northgate Accountancy", "northgateaccountancy.example", 23, "2024-05-20"),
    Customer("Bluestone Property Management", "bluestoneproperty.example", 31, "2025-01-13"),
    Customer("Alder Creek Brewing Co.", "aldercreekbrewing.example", 15, "2026-02-09", growth=0.03),
    Customer(
        "Holloway Architects",
        "hollowayarchitects.example",
        14,
        "2025-07-07",
        pauses=(("2026-11-16", None),),
    ),
    Customer("Pinecrest Physiotherapy", "pinecrestphysio.example", 6, "2026-04-20", "clinic"),
    Customer("Tidewater Logistics", "tidewaterlogistics.example", 108, "2024-09-30", growth=0.012),
    Customer("Greenfield Parish Council", "greenfieldparish.example", 5, "2025-03-17", growth=0.0),
    Customer("Summit Orthodontics", "summitortho.example", 10, "2026-06-01", "clinic"),
    Customer("Fairbanks Engineering", "fairbanks-eng.example", 64, "2025-05-05", growth=0.015),
    Customer(
        "Marlowe Insurance Brokers",
        "marloweinsurance.example",
        38,
        "2024-10-07",
        offboarded_on="2026-09-18",
    ),
    Customer("Lindqvist & Rowe Surveyors", "lindqvistrowe.example", 19, "2026-08-03"),
    Customer("Hartley Medical Practice", "hartleymedical.example", 33, "2026-10-12", "clinic"),
)

FIRST_NAMES = (
    "Aisha", "Alex", "Amelia", "Andrew", "Anita", "Ben", "Bethany", "Carlos", "Caroline",
    "Chloe", "Chris", "Claire", "Daniel", "David", "Deborah", "Elena", "Emily", "Emma",
    "Fatima", "Gareth", "Grace", "Hannah", "Harry", "Helen", "Imran", "Isabel", "Jack",
    "James", "Jamie", "Jasmine", "Jennifer", "Joanna", "John", "Jonathan", "Kate", "Kevin",
    "Laura", "Liam", "Lucy", "Marcus", "Maria", "Mark", "Megan", "Michael", "Mohammed",
    "Nadia", "Natalie", "Nathan", "Nicola", "Oliver", "Olivia", "Owen", "Patrick", "Paul",
    "Priya", "Rachel", "Rebecca", "Richard", "Robert", "Ruth", "Ryan", "Samuel", "Sarah",
    "Sean", "Simon", "Sophie", "Stephen", "Susan", "Thomas", "Tom", "Victoria", "William",
    "Yusuf", "Zoe", "Chiara", "Björn", "Siobhán", "Mateusz", "Renée", "Kwame",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Ahmed", "Allen", "Bailey", "Baker", "Bennett", "Brooks", "Campbell", "Carter",
    "Chen", "Clarke", "Collins", "Cooper", "Davies", "Edwards", "Evans", "Fischer", "Fletcher",
    "Foster", "Garcia", "Gray", "Green", "Hall", "Harris", "Hughes", "Hussain", "Jackson",
    "James", "Jenkins", "Johnson", "Jones", "Kelly", "Khan", "King", "Kowalski", "Lewis",
    "Martin", "Mitchell", "Morgan", "Morris", "Murphy", "Nguyen", "Novak", "O'Connor",
    "Owen", "Parker", "Patel", "Phillips", "Price", "Reid", "Roberts", "Robinson", "Rossi",
    "Russell", "Scott", "Shah", "Singh", "Smith", "Stewart", "Taylor", "Thomas", "Thompson",
    "Turner", "Walker", "Ward", "Watson", "White", "Williams", "Wilson", "Wood", "Wright",
    "Young", "Müller", "Okafor", "Larsen", "Dubois", "Fernández", "Byrne", "Kaur", "Mensah",
)  # fmt: skip
SHARED_MAILBOXES = {
    "office": (("Accounts Payable", "accounts"),),
    "school": (("School Office", "office"), ("Headteacher's PA", "head.pa")),
    "clinic": (("Reception", "reception"), ("Appointments", "appointments")),
}
_ASCII = str.maketrans(
    {"ä": "a", "á": "a", "é": "e", "ö": "o", "ü": "u", "ø": "o", "ñ": "n", "'": "", " ": ""}
)


def _day(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


def _month_starts() -> list[dt.date]:
    months, day = [], HISTORY_START
    while day <= HISTORY_END:
        months.append(day)
        day = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return months


def _working_day(rng: random.Random, first: dt.date, days: int) -> dt.date:
    """A weekday within `days` days from `first`, not after the end of the history."""
    day = first + dt.timedelta(days=rng.randrange(days))
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return min(day, HISTORY_END)


class _People:
    """One customer's people: unique names and addresses, and their licences."""

    def __init__(self, rng: random.Random, customer: Customer, number: int) -> None:
        self.rng, self.customer, self.number = rng, customer, number
        self.identities: list[dict[str, Any]] = []
        self.active: list[dict[str, Any]] = []
        self.left: list[dict[str, Any]] = []
        self.shared: set[str] = set()
        """Ids of shared mailboxes, which stay."""
        self._addresses: set[str] = set()

    def add(self, start: dt.date, name: tuple[str, str] | None = None) -> None:
        if name is None:
            first, last = self._new_name()
            display_name = f"{first} {last}"
            mailbox = f"{first}.{last}".lower().translate(_ASCII)
        else:
            display_name, mailbox = name
            self.shared.add(f"u-{self.number:04d}-{len(self.identities) + 1:03d}")
        address = mailbox
        while address in self._addresses:
            address = f"{mailbox}{self.rng.randint(2, 9)}"
        self._addresses.add(address)
        identity = {
            "id": f"u-{self.number:04d}-{len(self.identities) + 1:03d}",
            "display_name": display_name,
            "user_principal_name": f"{address}@{self.customer.domain}",
            "billable_periods": [{"from": start.isoformat(), "until": None}],
        }
        self.identities.append(identity)
        self.active.append(identity)

    def leave(self, day: dt.date) -> None:
        people = [i for i in self.active if i["id"] not in self.shared]
        if len(self.active) <= MIN_USERS or not people:
            return
        identity = self.rng.choice(people)
        period = identity["billable_periods"][-1]
        if dt.date.fromisoformat(period["from"]) >= day:
            return
        period["until"] = day.isoformat()
        self.active.remove(identity)
        self.left.append(identity)

    def come_back(self, day: dt.date) -> None:
        """Someone who left returns (a contractor rehired, a parental leave ending)."""
        earlier = [
            i for i in self.left if dt.date.fromisoformat(i["billable_periods"][-1]["until"]) < day
        ]
        if not earlier or len(self.active) >= MAX_USERS:
            return
        identity = self.rng.choice(earlier)
        identity["billable_periods"].append({"from": day.isoformat(), "until": None})
        self.left.remove(identity)
        self.active.append(identity)

    def _new_name(self) -> tuple[str, str]:
        return self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)


def _tenant(rng: random.Random, number: int, customer: Customer) -> dict[str, Any]:
    onboarded_on = _day(customer.onboarded_on)
    offboarded_on = _day(customer.offboarded_on)
    assert onboarded_on is not None
    start = max(onboarded_on, HISTORY_START)
    people = _People(rng, customer, number)
    for mailbox in SHARED_MAILBOXES[customer.kind][: 1 + (customer.users >= 40)]:
        people.add(onboarded_on - dt.timedelta(days=rng.randint(30, 900)), mailbox)
    while len(people.active) < customer.users:
        # Licensed before the customer came to Petra, some of them for years.
        people.add(onboarded_on - dt.timedelta(days=rng.randint(1, 2400)))

    for month in _month_starts():
        if month < start.replace(day=1) or (offboarded_on and month >= offboarded_on):
            continue
        first = max(month, start)
        days = ((month.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - first).days
        size = len(people.active)
        leavers = _count(rng, size * 0.012)
        joiners = _count(rng, size * (0.012 + customer.growth))
        if customer.kind == "school" and month.month == 7:
            leavers += round(size * 0.07)
        if customer.kind == "school" and month.month == 9:
            joiners += round(customer.users * 0.07)
            days = 5
        for _ in range(leavers):
            people.leave(_working_day(rng, first, days))
        for _ in range(joiners):
            if len(people.active) < MAX_USERS:
                people.add(_working_day(rng, first, days))
        if rng.random() < 0.08:
            people.come_back(_working_day(rng, first, days))

    return {
        "id": f"t-{number:04d}",
        "name": customer.name,
        "microsoft_tenant_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "onboarded_on": customer.onboarded_on,
        "offboarded_on": customer.offboarded_on,
        "pauses": [{"from": since, "until": until} for since, until in customer.pauses],
        "identities": people.identities,
    }


def _count(rng: random.Random, expected: float) -> int:
    """A whole number of events averaging `expected`."""
    whole, part = divmod(expected, 1)
    return int(whole) + (rng.random() < part)


def demo_data() -> dict[str, Any]:
    """Northwind MSP in the import format."""
    rng = random.Random(SEED)  # noqa: S311 - demo data, not secrets
    return {
        "organisation": {
            "slug": "northwind-msp",
            "name": "Northwind MSP",
            "billing_email": "billing@northwind.example",
            "stripe_customer_id": None,
            "portal_direct_access": False,
            "prices": [dict(price) for price in PRICES],
        },
        "members": [
            {"email": email, "name": name, "role": role, "password": password}
            for email, name, role, password in MEMBERS
        ],
        "tenants": [
            _tenant(rng, number, customer) for number, customer in enumerate(CUSTOMERS, start=1)
        ],
    }


def main() -> None:
    text = json.dumps(demo_data(), indent=2, ensure_ascii=False) + "\n"
    OUTPUT.write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {OUTPUT}\n")


if __name__ == "__main__":
    main()
