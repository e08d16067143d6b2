#!/usr/bin/env bash
# Runs schemathesis (from PyPI) over every operation of the served OpenAPI document against a
# freshly started `lakeport serve` on the embedded default. Checks: no 5xx, responses conform
# to the document (status, content type, schema), problem JSON on every 4xx
# (compat/schemathesis_hooks.py). CI calls this after the compatibility suite.
# SCHEMATHESIS_EXAMPLES bounds the generated cases per operation and phase.
set -euo pipefail
cd "$(dirname "$0")/.."
# Python 3.11 has a bug in its AST constructor ("AST constructor recursion depth mismatch")
# that schemathesis' coverage phase runs into now and then; prefer a newer interpreter.
py=python3
for candidate in python3.13 python3.12; do
  if command -v "$candidate" > /dev/null && "$candidate" -c 'import sys' 2> /dev/null; then
    py=$candidate && break
  fi
done
if command -v pyenv > /dev/null && [ -z "${PYENV_VERSION:-}" ] \
  && ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2> /dev/null; then
  newer=$(pyenv versions --bare 2> /dev/null | grep -E '^3\.1[2-9]\.[0-9]+$' | sort -V | tail -n1 || true)
  [ -n "$newer" ] && export PYENV_VERSION=$newer
fi
echo "== schemathesis on $("$py" --version)"
"$py" -m pip install --quiet --disable-pip-version-check 'schemathesis>=4.3,<5'
cargo build --quiet -p lakeport
data=$(mktemp -d)
port=${SCHEMATHESIS_PORT:-18182}
./target/debug/lakeport serve --listen "127.0.0.1:$port" --data-dir "$data" --token fuzz-token > "$data/server.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/health" > /dev/null && break
  sleep 0.1
done
export PYTHONPATH="$PWD/compat${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=schemathesis_hooks
started=$(date +%s)
status=0
"$py" -c 'import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())' run "http://127.0.0.1:$port/openapi.json" \
  --url "http://127.0.0.1:$port" \
  -H "Authorization: Bearer fuzz-token" -H "x-api-key: schemathesis" \
  -H "x-gw-ims-org-id: F0221A5E5C4E6C0A0A49421B@AdobeOrg" -H "x-sandbox-name: prod" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,problem_json_on_4xx \
  --phases examples,coverage,fuzzing \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-30}" --seed "${SCHEMATHESIS_SEED:-11}" \
  --workers 2 --request-timeout 30 --no-color --generation-database none \
  --report junit --report-dir "$data/report" || status=$?
echo "schemathesis finished in $(( $(date +%s) - started )) s (exit $status)"
if [ "$status" -ne 0 ]; then
  echo "== server log (errors)"; grep -i "error" "$data/server.log" | tail -n 40 || true
fi
exit "$status"
