"""Reading the app's HTML as a browser would: a small tree of the page, its tables' rows,
badges and the month summary region."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text for c in self.children]
        return " ".join(" ".join(parts).split())

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and all(
                    child.attrs.get(name.rstrip("_")) == value for name, value in attrs.items()
                ):
                    found.append(child)
                found.extend(child.all(tag, **attrs))
        return found

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        [found] = self.all(tag, **attrs)
        return found

    def by_id(self, element_id: str) -> Node | None:
        found = self.all(id=element_id)
        return found[0] if found else None


VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def rows(table: Node, section: str) -> list[list[str]]:
    return [[cell.text for cell in row.all() if cell.tag in ("th", "td")]
            for row in table.one(section).all("tr")]  # fmt: skip


def badges(cell: Node) -> list[str]:
    return [badge.text for badge in cell.all("span") if "badge" in badge.classes]


def email_history(response) -> list[list[str]]:
    """The rows of the billing email's change history: when, who, from, to."""
    page = parse(response.get_data(as_text=True))
    return rows(page.one("table", class_="history-table"), "tbody")


def summary_region(response) -> Node:
    region = parse(response.get_data(as_text=True)).by_id("usage-month")
    assert region is not None
    return region


_CSRF_TOKEN = re.compile(r'(?<="X-CSRFToken": ")[^"]+|(?<=name="csrf_token" value=")[^"]+')


def without_csrf_tokens(response) -> str:
    """The response's HTML with its CSRF tokens blanked: the tokens carry the second they were
    made in, so two answers that are otherwise the same differ there."""
    return _CSRF_TOKEN.sub("", response.get_data(as_text=True))
