"""Redaction of health output: every form of secret it masks, and text it must leave alone."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engined.core._redact import MASK, MAX_DEPTH, TOO_DEEP, is_secret_key, redact, redact_details

MASKED = [
    # credentials in URLs
    ("postgres://app:hunter2@db:5432/prod", "postgres://app:***@db:5432/prod"),
    ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
    ("amqp://guest:p@ss:w!rd@broker/vhost", "amqp://guest:***@broker/vhost"),
    ("dsn=mysql+pymysql://root:pw@db/app?x=1", "dsn=mysql+pymysql://root:***@db/app?x=1"),
    ("connect 'https://u:p@h/' failed", "connect 'https://u:***@h/' failed"),
    # key=value and key: value
    ("db_password=hunter2 user=bob", "db_password=*** user=bob"),
    ("password = hunter2", "password = ***"),
    ("passwd: hunter2", "passwd: ***"),
    ("pwd=/secret/dir", "pwd=***"),
    ("client_secret=abc; scope=read", "client_secret=***; scope=read"),
    ("x-api-key: K1, next", "x-api-key: ***, next"),
    ("api-key=k", "api-key=***"),
    ("apikey=k", "apikey=***"),
    ("apiKey=k", "apiKey=***"),
    ("APIKey=k", "APIKey=***"),
    ("api__key=k", "api__key=***"),
    ("API.KEY: k", "API.KEY: ***"),
    ("access_token=t1 ok", "access_token=*** ok"),
    ("authToken=t", "authToken=***"),
    ("SECRET_KEY=s", "SECRET_KEY=***"),
    ("PGPASSWORD=p psql", "PGPASSWORD=*** psql"),
    ("credentials=c", "credentials=***"),
    ("credential: c", "credential: ***"),
    ("--password=abc --user=x", "--password=*** --user=x"),
    ("spring.datasource.password=abc", "spring.datasource.password=***"),
    ("token=abc}", "token=***}"),
    ("password2=x", "password2=***"),
    # JSON, with string and other values
    ('{"password": "a b c", "user": "bob"}', '{"password": "***", "user": "bob"}'),
    ('{"token": 12345, "n": 1}', '{"token": ***, "n": 1}'),
    ('{"secret":"x\\"y","n":1}', '{"secret":"***","n":1}'),
    (
        '{"credentials": {"user": "u", "password": "p"}}',
        '{"credentials": {"user": "u", "password": "***"}}',
    ),
    # Python dict repr
    ("{'client_secret': 'xyz', 'name': 'n'}", "{'client_secret': '***', 'name': 'n'}"),
    ("{'token': 'it is'}", "{'token': '***'}"),
    # query strings
    ("GET /api?token=abc&x=1", "GET /api?token=***&x=1"),
    ("/cb?code=1&access_token=abc&state=s", "/cb?code=1&access_token=***&state=s"),
    ('url="https://h/p?api_key=k"', 'url="https://h/p?api_key=***"'),
    # quoted values, terminated or cut off
    ("password='it is secret' next", "password='***' next"),
    ('password="unterminated and more', 'password="***'),
    # authorization schemes
    ("Authorization: Bearer eyJhbGciOi.abc.def", "Authorization: Bearer ***"),
    ("Authorization: Bearer xyz", "Authorization: Bearer ***"),
    # Only an authorization header keeps its scheme word; elsewhere the word is the secret
    # (hypothesis found "password=BEARER trailing" kept BEARER and masked "trailing").
    ("password=BEARER trailing", "password=*** trailing"),
    ("x-api-key: Basic Zm9vOmJhcg==, next=1", "x-api-key: ***, next=1"),
    ("proxy-authorization=Basic Zm9vOmJhcg==", "proxy-authorization=Basic ***"),
    ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic ***"),
    ("{'Authorization': 'Bearer xyz'}", "{'Authorization': '***'}"),
    ("sent Bearer abc123 to the peer", "sent Bearer *** to the peer"),
    ("header bearer EYJTOKEN", "header bearer ***"),
    ("Basic dXNlcjpwYXNz rejected", "Basic *** rejected"),
    ("BASIC Zm9vOmJhcg==", "BASIC ***"),
    ("Bearer abcdefghijklmnopqrstuvwxyz", "Bearer ***"),
]

UNTOUCHED = [
    "",
    "connection refused",
    "tokens=5 secretary=bob keyboard=qwerty pwdx=1 passwordless=true",
    "api=1 key=2",
    "mail bob@example.com about user@host",
    "ssh://git@github.com:22/repo http://host:8080/path",
    "postgres://app@db/prod",
    "postgres://app:@db/prod",
    "basic auth failed; Basic Auth is off; bearer token expired",
    "password=",
    "token=&x=1",
    "a password is required",
    '{"session_id": "x", "passage": "y"}',
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_redact_masks_each_form(text: str, expected: str) -> None:
    """Each documented form of secret is masked and the text around it is kept."""
    assert redact(text) == expected


@pytest.mark.parametrize("text", UNTOUCHED)
def test_redact_leaves_text_without_secrets_alone(text: str) -> None:
    """Text that names no secret comes back unchanged, the same object."""
    assert redact(text) is text


@pytest.mark.parametrize(("text", "_"), MASKED)
def test_redact_is_idempotent(text: str, _: str) -> None:
    """Redacting redacted text changes nothing."""
    once = redact(text)
    assert redact(once) == once


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "db_password",
        "dbPassword",
        "passwd",
        "pwd",
        "MYSQL_PWD",
        "secret",
        "client_secret",
        "SECRET_KEY",
        "token",
        "access_token",
        "authToken",
        "accesstoken",
        "api_key",
        "api-key",
        "x-api-key",
        "apikey",
        "apiKey",
        "APIKey",
        "Authorization",
        "credential",
        "credentials",
        "aws.credentials.file",
        "PGPASSWORD",
        "token2",
    ],
)
def test_is_secret_key_recognises_secret_keys(key: str) -> None:
    """Keys naming a secret by a word part, an api+key pair or a compound suffix count."""
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "tokens",
        "secretary",
        "keyboard",
        "pwdx",
        "passwordless",
        "api",
        "key",
        "monkey",
        "key_api",
        "author",
        "user",
        "",
        "_",
    ],
)
def test_is_secret_key_refuses_other_keys(key: str) -> None:
    """Words that merely contain or resemble a secret word do not count."""
    assert not is_secret_key(key)


def test_redact_converts_a_non_string_instead_of_raising() -> None:
    """A non-string argument is converted with str() and redacted, never an error."""
    assert redact(123) == "123"  # type: ignore[arg-type]
    assert redact({"password": "x"}) == "{'password': '***'}"  # type: ignore[arg-type]


def test_redact_fails_closed_when_conversion_raises() -> None:
    """If the text cannot even be read, everything is masked rather than raising."""

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert redact(Unprintable()) == MASK  # type: ignore[arg-type]


def test_redact_details_masks_secret_keys_whatever_their_value() -> None:
    """A secret key's value becomes "***" whether a string, a number or a container."""
    details = {"password": "p", "api_key": 123, "credentials": {"user": "u"}, "n": 1}
    assert redact_details(details) == {
        "password": MASK,
        "api_key": MASK,
        "credentials": MASK,
        "n": 1,
    }


def test_redact_details_redacts_strings_and_recurses() -> None:
    """Strings are redacted, mappings, lists and tuples are copied and processed."""
    details: dict[Any, Any] = {
        "dsn": "postgres://u:p@h/db",
        "peers": ["token=abc", ("Bearer abc123", 7), {"client_secret": "s", "ok": True}],
        3: "secret=x",
        "latency": 0.25,
        "none": None,
    }
    assert redact_details(details) == {
        "dsn": "postgres://u:***@h/db",
        "peers": ["token=***", ("Bearer ***", 7), {"client_secret": MASK, "ok": True}],
        3: "secret=***",
        "latency": 0.25,
        "none": None,
    }


def test_redact_details_returns_a_new_dict_and_keeps_the_input() -> None:
    """The input is not modified and the result is a new plain dict."""
    inner = {"password": "p"}
    details = {"inner": inner}
    result = redact_details(details)
    assert result == {"inner": {"password": MASK}}
    assert result is not details
    assert inner == {"password": "p"}


def test_redact_details_bounds_the_depth() -> None:
    """Containers nested deeper than MAX_DEPTH are replaced by a short placeholder."""
    nested: Any = "deep"
    for _ in range(MAX_DEPTH + 2):
        nested = [nested]
    result: Any = redact_details({"n": nested})["n"]
    for _ in range(MAX_DEPTH - 2):
        result = result[0]
    assert result == [TOO_DEEP]


def test_redact_details_ends_self_referencing_containers() -> None:
    """A list containing itself ends in the placeholder instead of recursing forever."""
    loop: list[Any] = []
    loop.append(loop)
    assert TOO_DEEP in repr(redact_details({"loop": loop}))


def test_redact_details_survives_a_broken_mapping() -> None:
    """A nested mapping that raises when read is replaced, not propagated."""

    class Broken(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise KeyError(key)

        def __iter__(self) -> Iterator[str]:
            raise RuntimeError("broken")

        def __len__(self) -> int:
            return 1

    assert redact_details({"b": Broken(), "ok": 1}) == {"b": "<unreadable>", "ok": 1}


# Properties. Fragments combine into text with secrets in every form and near misses.
FRAGMENTS = st.sampled_from(
    [
        " ",
        ", ",
        "&",
        "?",
        "=",
        ": ",
        '"',
        "'",
        "{",
        "}",
        "@",
        "://",
        "postgres://u:p@h/db",
        "https://:x@y",
        "password",
        "token",
        "tokens",
        "api_key",
        "Authorization",
        "Bearer ",
        "Basic ",
        "abc123",
        "hunter2",
        "***",
        "bob@example.com",
        "secretary",
        "x",
        "\\",
        "\n",
    ]
)
TEXTS = st.lists(FRAGMENTS, max_size=12).map("".join)
# Values without the characters that end an unquoted value.
VALUES = st.text(
    alphabet=st.characters(
        codec="utf-8",
        exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp"),
        exclude_characters=",;&}])'\"{[(*",
    ),
    min_size=1,
)


@given(st.text())
def test_redact_never_raises_and_returns_a_string(text: str) -> None:
    """Any text at all gives a string back."""
    assert isinstance(redact(text), str)


@given(TEXTS)
def test_redact_is_idempotent_on_mixed_text(text: str) -> None:
    """Redacting twice gives what redacting once gave, whatever mix of forms."""
    once = redact(text)
    assert redact(once) == once


@given(
    st.sampled_from(["password", "db_password", "token", "api_key", "x-api-key", "SECRET_KEY"]),
    st.sampled_from(["=", ": ", " = "]),
    VALUES,
    st.sampled_from(["", " trailing", ", next=1", "&x=1", ";"]),
)
def test_redact_removes_every_secret_value(key: str, sep: str, value: str, tail: str) -> None:
    """Whatever a secret key's value, the output is the key, the separator, *** and the rest."""
    assert redact(f"{key}{sep}{value}{tail}") == f"{key}{sep}{MASK}{tail}"


@given(st.text(alphabet="abcdefghijklmnoquvwxyzABCDEFGHIJKLMNOQUVWXYZ0123456789 ,;=:&{}'\"@.-_"))
def test_redact_leaves_hint_free_text_unchanged(text: str) -> None:
    """Text that cannot spell a secret word, a scheme or a URL (no p, r, s, t, /) is unchanged."""
    assert redact(text) is text
