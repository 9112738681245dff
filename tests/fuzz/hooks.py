"""cycleml's own Schemathesis checks (loaded with SCHEMATHESIS_HOOKS=tests.fuzz.hooks).

Beside Schemathesis' built-in ones (no 5xx, documented status codes, content types and
response schemas), every error answer must name what was wrong and never echo what
was sent.
"""

from __future__ import annotations

import json
import re
from typing import Any

import schemathesis

_FIELD = re.compile(r"^[\w\[\]\.]+:|\"loc\"|json|content-type|too large|task", re.IGNORECASE)
_MIN_ECHO = 10  # shorter values collide with ordinary words of a message


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@schemathesis.check
def no_payload_echo(ctx: Any, response: Any, case: Any) -> bool | None:
    """An error body never repeats a value the client sent."""
    if response.status_code < 400 or not isinstance(case.body, dict | list):
        return None
    text = response.text
    for value in _strings(case.body):
        if len(value) >= _MIN_ECHO and (value in text or json.dumps(value)[1:-1] in text):
            raise AssertionError(f"the error body repeats a submitted value ({len(value)} chars)")
    return None


@schemathesis.check
def client_errors_name_the_problem(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 4xx says which field (``records[0].tenure_months``, ``loc``) or part was wrong."""
    if not 400 <= response.status_code < 500 or response.status_code in (401, 403, 404, 405):
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError("a 4xx body that is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        raise AssertionError('a 4xx body without {"error": "..."}')
    if not (_FIELD.search(body["error"]) or body.get("detail")):
        raise AssertionError(f"a 4xx that names no field: {body['error'][:120]!r}")
    return None
