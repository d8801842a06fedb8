"""Unsubscribe tokens: round trip, forgery, other lists, malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest.tokens import TOKEN_LENGTH, make_token, subscriber_from_token, unsubscribe_url

SECRET = "s3cret-for-tests"
LIST = "digest.example.com"


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_round_trip_with_fixed_length(subscriber_id: int) -> None:
    """Give back the subscriber id from a token that is always TOKEN_LENGTH URL-safe chars."""
    token = make_token(SECRET, LIST, subscriber_id)
    assert len(token) == TOKEN_LENGTH
    assert all(c.isalnum() or c in "-_" for c in token)
    assert subscriber_from_token(SECRET, LIST, token) == subscriber_id


def test_every_single_character_change_is_refused() -> None:
    """Refuse a token with any one character changed."""
    token = make_token(SECRET, LIST, 42)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, ch in enumerate(token):
        other = alphabet[(alphabet.index(ch) + 1) % len(alphabet)]
        forged = token[:i] + other + token[i + 1 :]
        assert subscriber_from_token(SECRET, LIST, forged) is None, i


def test_other_list_or_secret_is_refused() -> None:
    """Refuse a token made for another list or with another secret."""
    token = make_token(SECRET, LIST, 7)
    assert subscriber_from_token(SECRET, "other.example.com", token) is None
    assert subscriber_from_token("another secret", LIST, token) is None
    assert subscriber_from_token("", LIST, token) is None


@pytest.mark.parametrize(
    "bad",
    ["", "x", "A" * 31, "A" * 33, "A" * 31 + "=", "é" * 32, "A" * 30 + "\r\n", "../" * 10 + "AB"],
)
def test_malformed_tokens_are_refused(bad: str) -> None:
    """Return None, not an exception, for anything that is not a token."""
    assert subscriber_from_token(SECRET, LIST, bad) is None


def test_a_forged_id_with_a_copied_mac_is_refused() -> None:
    """Refuse another subscriber's id glued to a valid MAC."""
    mine = make_token(SECRET, LIST, 1)
    theirs = make_token(SECRET, LIST, 2)
    assert subscriber_from_token(SECRET, LIST, theirs[:11] + mine[11:]) is None


def test_empty_secret_cannot_make_tokens() -> None:
    """Refuse to sign with an empty secret."""
    with pytest.raises(ValueError, match="empty secret"):
        make_token("", LIST, 1)


def test_unsubscribe_url_carries_no_address() -> None:
    """Build BASE/unsubscribe/TOKEN, with no email address in it."""
    token = make_token(SECRET, LIST, 3)
    url = unsubscribe_url("https://news.example.org/", token)
    assert url == f"https://news.example.org/unsubscribe/{token}"
    assert "@" not in url
