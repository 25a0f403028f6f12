"""Masking secrets in what health checks report, before anyone else can read it.

Public health output must not leak DSN passwords or tokens. A check that fails with
``could not connect to postgres://app:hunter2@db/prod`` or returns
``details={"dsn": ..., "api_key": ...}`` would otherwise publish them over gRPC, the
CLI and ``/metrics`` to anyone who can reach the daemon: the "details leak" issues in
the research notes (edictum-console#17, spring-boot#5750; DESIGN §9). The manager
therefore runs every message, error and string value in ``details`` through
:func:`redact` and :func:`redact_details` when it records a result.

What is masked, as ``***``:

* the password in a URL's user info: ``scheme://user:pass@host`` becomes
  ``scheme://user:***@host`` (also ``scheme://:pass@host``; the password runs to the
  last ``@`` of the authority, as :func:`urllib.parse.urlsplit` reads it, so an
  unescaped ``@`` or ``:`` in it is masked too);
* the value of a key that names a secret (:func:`is_secret_key`) in ``key=value``,
  ``key: value``, JSON ``"key": value``, dict repr ``'key': 'value'`` and query string
  forms; a quoted value is masked up to its closing quote, an unquoted one up to
  whitespace, ``,``, ``;``, ``&``, a quote or a closing bracket;
* the credentials after ``Bearer`` or ``Basic`` (any case) when they look like one.

These functions run on every recorded result (a thousand checks a second), so the
regular expressions are compiled once, keys are judged once each (cached), and text
with nothing that could be a secret is returned after one cheap scan, unchanged.
They never raise: if anything goes wrong, the whole text is masked (fail closed).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["MASK", "is_secret_key", "redact", "redact_details"]

MASK: Final = "***"
"""What a secret is replaced with."""

MAX_DEPTH: Final = 8
"""Containers nested deeper than this in ``details`` are replaced by :data:`TOO_DEEP`."""

TOO_DEEP: Final = "<nested too deep>"

_MAX_PASSES: Final = 4  # extra passes of redact() over text it changed (see there)

# Word parts of a key that name a secret on their own ("db_password", "x-api-key").
_SECRET_PARTS: Final = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "apikey",
        "authorization",
        "credential",
        "credentials",
    }
)
# A part made of several words run together ("pgpassword", "accesstoken") counts when
# it ends with one of these; "tokens", "secretary" and "pwdx" do not end with one.
_SECRET_SUFFIXES: Final = ("password", "passwd", "secret", "token", "apikey")

# Word parts: an acronym before a capitalised word ("APIKey" -> API, Key), a
# capitalised or lowercase word, an all-caps run, a number.
_PARTS: Final = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")

# Cheap first scan of the lowercased text: could there be a secret at all? (Every key
# rule and form needs one of these substrings.) Lowercasing first and searching case
# sensitively is several times faster than re.IGNORECASE.
_HINT: Final = re.compile(
    r"pass|pwd|secret|token|api[^a-z0-9]*key|authori[sz]|credential|bearer|basic|://"
)

# scheme://user:password@host -- the password runs to the last "@" of the authority
# (greedy, then backtracking), never across whitespace, a quote, "/", "?" or "#".
_URL_CREDENTIALS: Final = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#:'\"]*):(?P<password>[^\s/?#'\"]+)@"
)

# key <sep> value, the key maybe quoted; "Bearer"/"Basic" before the value is kept.
_KEYED: Final = re.compile(
    r"""
    (?<![\w.\-])                     # a key starts a run of key characters
    (?P<q>["']?)(?P<key>[\w.\-]+)(?P=q)
    (?P<sep>[ \t]*[:=][ \t]*)
    (?P<scheme>(?i:bearer|basic|token|digest)[ \t]+)?
    (?P<value>
        "(?:[^"\\]|\\.)*"?           # double-quoted, to the closing quote (or the end)
      | '(?:[^'\\]|\\.)*'?           # single-quoted
      | [^\s,;&}\])'"{\[(][^\s,;&}\])'"]*  # unquoted, not opening a container
    )
    """,
    re.VERBOSE,
)

# Authorization schemes outside a keyed form: "... sent Bearer eyJhbGciOi...".
_AUTH_SCHEME: Final = re.compile(
    r"\b(?P<scheme>(?i:bearer|basic))(?P<space>[ \t]+)(?P<credentials>[A-Za-z0-9\-._~+/]+=*)"
)
# Credentials look like one when they have a digit, a symbol of the token alphabet, a
# capital after the first letter, or are long: "Bearer Zm9vOmJhcg==" is masked, while
# "basic auth failed" or "Basic Auth" stay readable.
_LOOKS_LIKE_CREDENTIALS: Final = re.compile(r"[0-9\-._~+/=]|.[A-Z]|^.{20}")


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether ``key`` names a secret, judged on its word parts, in any case.

    The key is split into words at non-alphanumerics and camelCase boundaries. It names
    a secret when a part is one of password, passwd, pwd, secret, token, apikey,
    authorization, credential(s); when ``api`` is followed by ``key``; or when a part
    ends with password, passwd, secret, token or apikey (``PGPASSWORD``,
    ``accesstoken``). So ``db_password``, ``client_secret``, ``x-api-key``,
    ``authToken`` and ``SECRET_KEY`` name secrets; ``tokens``, ``secretary``,
    ``keyboard``, ``pwdx`` and ``passwordless`` do not.
    """
    parts = [part.lower() for part in _PARTS.findall(key)]
    for index, part in enumerate(parts):
        if part in _SECRET_PARTS or part.endswith(_SECRET_SUFFIXES):
            return True
        if part == "api" and index + 1 < len(parts) and parts[index + 1] == "key":
            return True
    return False


@functools.lru_cache(maxsize=1024)
def _names_authorization(key: str) -> bool:
    """Whether ``key`` is an authorization header, whose value starts with a scheme word."""
    return any(part.lower() in ("authorization", "auth") for part in _PARTS.findall(key))


def _mask_password(match: re.Match[str]) -> str:
    return f"{match['head']}:{MASK}@"


def _mask_keyed(text: str) -> str:
    # By hand rather than with re.sub: after a key that names no secret, scanning goes on
    # inside its value, where "url='https://h/?token=abc'" keeps its secret.
    pieces: list[str] = []
    done = pos = 0
    search = _KEYED.search
    while (match := search(text, pos)) is not None:
        key = match["key"]
        if not is_secret_key(key):
            pos = match.end("sep")
            continue
        scheme = match["scheme"]
        if scheme and not _names_authorization(key):
            # Only an authorization header's value starts with a scheme word. Elsewhere
            # ("password=Bearer x") the word is the secret itself, and so is what follows
            # when it looks like credentials ("x-api-key: Basic Zm9v==").
            start = match.start("scheme")
            pieces.append(text[done:start])
            pieces.append(MASK)
            if _LOOKS_LIKE_CREDENTIALS.search(match["value"]):
                done = pos = match.end()
            else:
                done = pos = start + len(scheme.rstrip())
            continue
        value = match["value"]
        quote = value[:1]
        if quote in ("'", '"'):
            closed = len(value) > 1 and value.endswith(quote)
            masked = f"{quote}{MASK}{quote}" if closed else quote + MASK
        else:
            masked = MASK
        pieces.append(text[done : match.start("value")])
        pieces.append(masked)
        done = pos = match.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def _mask_scheme(match: re.Match[str]) -> str:
    if not _LOOKS_LIKE_CREDENTIALS.search(match["credentials"]):
        return match[0]
    return f"{match['scheme']}{match['space']}{MASK}"


def _redact_once(text: str, lowered: str) -> str:
    # Each form runs only if the text has what it needs; most messages have none of them.
    if "://" in text:
        text = _URL_CREDENTIALS.sub(_mask_password, text)
    if "=" in text or ":" in text:
        text = _mask_keyed(text)
    if "bearer" in lowered or "basic" in lowered:
        text = _AUTH_SCHEME.sub(_mask_scheme, text)
    return text


def redact(text: str) -> str:
    """Return ``text`` with passwords, tokens and other credentials replaced by ``***``.

    See the module docstring for the forms recognised. Text without secrets is returned
    unchanged (the same object); ``redact(redact(text)) == redact(text)``.

    Never raises: a non-string is converted with :func:`str` first, and if anything
    fails the whole text is masked.
    """
    try:
        if not isinstance(text, str):
            text = str(text)
        lowered = text.lower()
        if not _HINT.search(lowered):
            return text
        redacted = _redact_once(text, lowered)
        if redacted == text:
            return text
        # A mask can complete a form that a later pass would see, as in
        # "x://password:/}@" -> "x://password:***}@", which now reads as a URL with a
        # password. Repeat until nothing changes, so that redacting is idempotent.
        for _ in range(_MAX_PASSES):
            again = _redact_once(redacted, redacted.lower())
            if again == redacted:
                break
            redacted = again
        return redacted
    except Exception:  # fail closed: a redactor that raises or leaks is worse than "***"
        return MASK


def redact_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Return a redacted copy of a check's ``details``.

    The value of a key that names a secret (:func:`is_secret_key`) becomes ``"***"``
    whatever its type; other strings go through :func:`redact`; mappings, lists and
    tuples are copied and processed the same way down to :data:`MAX_DEPTH` levels,
    deeper ones replaced by :data:`TOO_DEEP` (which also ends self-referencing
    containers). Other values, and keys that are not strings, are kept as they are.

    Never raises: a container that cannot be read is replaced by a placeholder.
    """
    redacted = _redact_value(details, 0)
    return redacted if isinstance(redacted, dict) else {}


def _redact_value(value: object, depth: int) -> Any:
    if isinstance(value, str):
        return redact(value)
    if not isinstance(value, Mapping | list | tuple):
        return value
    if depth >= MAX_DEPTH:
        return TOO_DEEP
    try:
        if isinstance(value, Mapping):
            return {
                key: MASK
                if isinstance(key, str) and is_secret_key(key)
                else _redact_value(item, depth + 1)
                for key, item in value.items()
            }
        items = [_redact_value(item, depth + 1) for item in value]
    except Exception:  # a broken user container: keep nothing of it
        return "<unreadable>"
    return items if isinstance(value, list) else tuple(items)
