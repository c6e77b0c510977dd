"""Request-body validation for the GitHub emulator, from GitHub's own OpenAPI description.

An emulator that accepts any body proves nothing about the requests a step
sends: GitHub answers a body that breaks its schema with 422 "Invalid request."
So the emulator checks each JSON body against the operation's ``requestBody``
schema in ``@octokit/openapi`` (``api.github.com.json``, pinned in
package.json) and refuses a mismatch the way GitHub words it:

* ``Invalid request.\\n\\n"sha" wasn't supplied.`` for a missing property
  (the same wording GitHub's manifest page uses, probot/probot#806);
* ``Invalid request.\\n\\nFor 'properties/mode', 7 is not a string.`` for a
  wrong type (probot/probot#806 shows the "For 'properties/url', … is not a
  string" form);
* ``Invalid request.\\n\\n<detail>`` otherwise (the "Invalid request.\\n\\n"
  prefix is in PyGithub's recorded answer
  tests/ReplayData/Branch.testEditRequiredPullRequestReviewsWithTooLargeApprovingReviewCount.txt;
  the detail's wording for other rules is unverified).

The description is 13 MB: it is read once per process, and only when found
(env ``BOOTSTRAP_GITHUB_OPENAPI``, else the checkout's ``node_modules``) with
``openapi-schema-validator`` installed (the dev extra). Without it the emulator
still runs, unvalidated; ``GitHubEmulator.validates_requests`` says which.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SPEC_ENV = "BOOTSTRAP_GITHUB_OPENAPI"
DEFAULT_SPEC = (
    Path(__file__).resolve().parents[1] / "node_modules/@octokit/openapi/generated/api.github.com.json"
)
_TYPES = {"string": "a string", "integer": "an integer", "boolean": "a boolean", "object": "an object"}


class RequestSchemas:
    """The requestBody schema of each (method, path template) GitHub documents."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._components = spec.get("components", {})
        self._bodies: dict[tuple[str, str], dict[str, Any]] = {}
        for template, item in spec.get("paths", {}).items():
            for method, operation in item.items():
                body = operation.get("requestBody") if isinstance(operation, dict) else None
                if body is None:
                    continue
                if "$ref" in body:
                    body = self._components["requestBodies"][body["$ref"].rsplit("/", 1)[-1]]
                schema = body.get("content", {}).get("application/json", {}).get("schema")
                if schema is not None:
                    self._bodies[(method.upper(), template)] = schema
        self._validators: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def documents(self, method: str, template: str) -> bool:
        return (method.upper(), template) in self._bodies

    def problem(self, method: str, template: str, body: Any) -> str | None:
        """GitHub's 422 message for ``body``, or None when the schema accepts it (or has none)."""
        key = (method.upper(), template)
        if key not in self._bodies:
            return None
        from jsonschema.exceptions import best_match  # type: ignore[import-untyped]  # dev extra

        error = best_match(self._validator(key).iter_errors(body))
        if error is None:
            return None
        where = "/".join(f"properties/{p}" if isinstance(p, str) else "items" for p in error.path)
        if error.validator == "required":
            missing = str(error.message).split("'")[1] if "'" in str(error.message) else "?"
            return f'Invalid request.\n\n"{missing}" wasn\'t supplied.'
        if error.validator == "type" and where:
            wanted = error.validator_value
            kind = _TYPES.get(wanted, f"a {wanted}") if isinstance(wanted, str) else "of the right type"
            return f"Invalid request.\n\nFor '{where}', {json.dumps(error.instance)} is not {kind}."
        prefix = f"For '{where}', " if where else ""
        return f"Invalid request.\n\n{prefix}{error.message}."

    def _validator(self, key: tuple[str, str]) -> Any:
        with self._lock:
            if key not in self._validators:
                from openapi_schema_validator import OAS30Validator

                rooted = {"allOf": [self._bodies[key]], "components": self._components}
                self._validators[key] = OAS30Validator(rooted)
            return self._validators[key]


@functools.cache
def default() -> RequestSchemas | None:
    """The schemas from the pinned description, read once per process; None when unavailable."""
    path = Path(os.environ.get(SPEC_ENV) or DEFAULT_SPEC)
    try:
        import openapi_schema_validator  # noqa: F401  (the dev extra)
    except ImportError:
        return None
    if not path.is_file():
        return None
    return RequestSchemas(json.loads(path.read_text()))
