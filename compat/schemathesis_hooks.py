"""Schemathesis checks of Lakeport's own contract, loaded by compat/schemathesis.sh.

Every 4xx must carry the problem body of spec §1.6 (`type`, `status`, `title`, `detail`,
with `type` = http://ns.adobe.com/aep/errors/<PREFIX>-<NNNN>-<HTTP> and `status` equal to
the HTTP status). Two documented exceptions: the gateway's refusals of the auth headers
(spec §1.2: 400, 401 or 403 with the flat body `{"error_code", "message"}`), and the
streaming inlets under /collection (spec §10.2/§10.4), whose own refusals are Adobe's Data
Collection problem: a data-collection-service `type`, `status` equal to the HTTP status,
`title` and `report.message`.
"""

import json
import re

import schemathesis

PROBLEM_TYPE = re.compile(r"^http://ns\.adobe\.com/aep/errors/[A-Z]+-[0-9]{4}-([0-9]{3})$")
COLLECTION_TYPE = re.compile(r"^https?://ns\.adobe\.com/adobecloud/problem/data-collection-service")


def collection_problem(status, body):
    """Checks the Data Collection problem shape of the streaming inlets."""
    if not COLLECTION_TYPE.match(str(body.get("type", ""))):
        raise AssertionError(f"{status} inlet problem type is not a data-collection-service URI: {body}")
    if body.get("status") != status or not body.get("title"):
        raise AssertionError(f"{status} inlet problem lacks a matching status or a title: {body}")
    report = body.get("report")
    if not isinstance(report, dict) or not isinstance(report.get("message"), str) or not report["message"]:
        raise AssertionError(f"{status} inlet problem lacks report.message: {body}")


@schemathesis.check
def problem_json_on_4xx(ctx, response, case):
    status = response.status_code
    if not 400 <= status < 500 or case.method.upper() == "HEAD":
        return None
    media_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
    if media_type != "application/json":
        raise AssertionError(f"{status} answered with Content-Type {media_type!r}, not application/json")
    try:
        body = json.loads(response.content)
    except ValueError as err:
        raise AssertionError(f"{status} body is not JSON: {err}") from err
    if not isinstance(body, dict):
        raise AssertionError(f"{status} body is not a JSON object")
    if status in (400, 401, 403) and set(body) == {"error_code", "message"}:
        return None
    path = str(getattr(case, "path", "") or getattr(case.operation, "path", ""))
    # The inlets' own refusals use Adobe's Data Collection shape; the router's (405 for an
    # unserved method) stay §1.6 problems, checked below.
    if path.startswith("/collection/") and COLLECTION_TYPE.match(str(body.get("type", ""))):
        collection_problem(status, body)
        return None
    missing = [key for key in ("type", "status", "title", "detail") if key not in body]
    if missing:
        raise AssertionError(f"{status} problem body lacks {missing}: {body}")
    match = PROBLEM_TYPE.match(str(body["type"]))
    if not match:
        raise AssertionError(f"problem type {body['type']!r} is not an AEP error URI")
    if body["status"] != status or int(match.group(1)) != status:
        raise AssertionError(f"problem {body['type']} says status {body['status']}, the response is {status}")
    return None
