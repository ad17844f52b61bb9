"""The one way API tests call the API: a test client that checks every answer against the
OpenAPI document the app serves (status listed for the operation, body matching its schema,
and for errors the JSON shape), and tokens made through the token service."""

from __future__ import annotations

import re

import jsonschema
from openapi_spec_validator import validate as validate_spec

from billing_app.api_tokens import service as tokens
from billing_app.extensions import db
from billing_app.models import Member

API = "/api/v1"


def make_token(
    app,
    scopes=(tokens.USAGE_READ, tokens.INVOICES_READ),
    expires_in_days: int | None = None,
    slug: str = "northwind-msp",
    name: str = "PSA sync",
) -> str:
    """A new token of the organisation's admin: its secret."""
    with app.app_context():
        admin = db.session.query(Member).filter_by(email=f"admin@{slug}.example").one()
        created = tokens.create(admin.organisation_id, admin, name, scopes, expires_in_days)
        db.session.remove()
        return created.secret


class ApiClient:
    """GETs the API with a bearer token; each answer is checked against the document."""

    def __init__(self, client, token: str | None = None):
        self.client = client
        self.token = token
        self._document: dict | None = None
        self._operations: list[tuple[re.Pattern, dict]] = []
        self.checked = 0

    @property
    def document(self) -> dict:
        if self._document is None:
            response = self.client.get(f"{API}/openapi.json")
            assert response.status_code == 200
            document = response.get_json()
            validate_spec(document)
            assert document["openapi"].startswith("3.1")
            self._document = document
            for path, item in document["paths"].items():
                pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
                self._operations.append((pattern, item))
        return self._document

    def get(self, path: str, token: str | None = ..., headers: dict | None = None, **kwargs):
        """GET `path` (relative to /api/v1 unless absolute) and check the answer."""
        token = self.token if token is ... else token
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = path if path.startswith("/") else f"{API}/{path}"
        response = self.client.get(url, headers=headers, **kwargs)
        self.check(url, response)
        return response

    def check(self, url: str, response) -> None:
        """The answer is one the document lists for this operation, in its shape."""
        document = self.document
        path = url.split("?", 1)[0]
        if response.status_code >= 400:
            body = response.get_json()
            assert response.mimetype == "application/json", response.get_data(as_text=True)
            assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}
            assert body["error"]["message"]
        operation = next((item["get"] for p, item in self._operations if p.match(path)), None)
        if operation is None:
            assert response.status_code in (404, 405), path
            return
        responses = operation["responses"]
        listed = responses.get(str(response.status_code)) or responses.get("default")
        assert listed is not None, f"{response.status_code} not in the document for {path}"
        if response.status_code == 304:
            assert response.get_data() == b""
            assert response.headers.get("ETag")
            return
        assert response.headers.get("ETag") or response.status_code >= 400
        content = listed.get("content", {}).get("application/json")
        if content is not None:
            schema = {**content["schema"], "components": document["components"]}
            jsonschema.validate(response.get_json(), schema, cls=jsonschema.Draft202012Validator)
        self.checked += 1
