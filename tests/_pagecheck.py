"""Structural checks of a web page of ours: the landmarks, one h1, labelled fields."""

from __future__ import annotations

from collections import Counter
from html.parser import HTMLParser

# Elements that have no end tag.
_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "wbr",
}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.ids: Counter[str] = Counter()
        self.label_for: set[str] = set()
        self.fields: list[dict[str, str]] = []
        self.open: list[str] = []
        self.in_label = 0
        self.unbalanced: list[str] = []
        self.html_attrs: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags[tag] += 1
        if "id" in a:
            self.ids[a["id"]] += 1
        if tag == "html":
            self.html_attrs = a
        if tag == "label":
            self.in_label += 1
            if a.get("for"):
                self.label_for.add(a["for"])
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.fields.append({**a, "_wrapped": "1" if self.in_label else ""})
        if tag not in _VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.in_label -= 1
        if tag in _VOID:
            return
        if not self.open or self.open[-1] != tag:
            self.unbalanced.append(tag)
            return
        self.open.pop()


def check_page(html: str) -> _Page:
    """Assert what every page of ours has; return the parsed page for more checks."""
    page = _Page()
    page.feed(html)
    page.close()
    assert html.startswith("<!DOCTYPE html>")
    assert not page.unbalanced and page.open == [], (page.unbalanced, page.open)
    assert page.html_attrs.get("lang") and page.html_attrs.get("dir") in ("ltr", "rtl")
    for tag in ("h1", "main", "header", "footer", "title"):
        assert page.tags[tag] == 1, (tag, page.tags[tag])
    assert page.tags["nav"] >= 1
    doubled = [i for i, n in page.ids.items() if n > 1]
    assert not doubled, doubled
    for field in page.fields:
        assert field["_wrapped"] or field.get("id") in page.label_for, field
    assert 'id="subscribe-link"' in html
    return page
