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
port=${SCHEMATHESIS_PORT:-18182}
source compat/serve.sh
start_lakeport "$port" fuzz-token
export PYTHONPATH="$PWD/compat${PYTHONPATH:+:$PYTHONPATH}" SCHEMATHESIS_HOOKS=schemathesis_hooks

# Real objects, so that most generated calls reach past the 404 of an unknown id: a dataset,
# a batch left loading, a promoted batch with its dataset file, and a registry data type.
# Path parameters (and the create-batch body's datasetId) take these ids in most cases and
# generated strings in the others; the stateful phase follows the document's links from them.
base="http://127.0.0.1:$port"
H=(-H "Authorization: Bearer fuzz-token" -H "x-api-key: schemathesis"
   -H "x-gw-ims-org-id: F0221A5E5C4E6C0A0A49421B@AdobeOrg" -H "x-sandbox-name: prod")
field() { python3 -c "import json,sys; print(eval('json.load(sys.stdin)' + sys.argv[1]))" "$1"; }
schema=$(curl -sf "${H[@]}" -H 'content-type: application/json' -X POST "$base/data/foundation/schemaregistry/tenant/schemas" \
  -d '{"title":"schemathesis","type":"object","allOf":[{"$ref":"https://ns.adobe.com/xdm/context/profile"}]}' | field '["$id"]')
dataset=$(curl -sf "${H[@]}" -H 'content-type: application/json' -X POST "$base/data/foundation/catalog/dataSets" \
  -d "{\"name\":\"schemathesis\",\"schemaRef\":{\"id\":\"$schema\"},\"fileDescription\":{\"format\":\"json\"}}" | field '[0].split("/")[-1]')
new_batch() {
  curl -sf "${H[@]}" -H 'content-type: application/json' -X POST "$base/data/foundation/import/batches" \
    -d "{\"datasetId\":\"$dataset\",\"inputFormat\":{\"format\":\"json\"}}" | field '["id"]'
}
loading=$(new_batch)
promoted=$(new_batch)
printf '{"_id":"p1"}\n{"_id":"p2"}\n' | curl -sf "${H[@]}" -H 'content-type: application/octet-stream' -X PUT \
  --data-binary @- "$base/data/foundation/import/batches/$promoted/datasets/$dataset/files/rows.json"
curl -sf "${H[@]}" -X POST "$base/data/foundation/import/batches/$promoted?action=COMPLETE"
for _ in $(seq 1 300); do
  state=$(curl -sf "${H[@]}" "$base/data/foundation/catalog/batches/$promoted" | field "[\"$promoted\"][\"status\"]")
  [ "$state" = success ] || [ "$state" = failed ] && break
  sleep 0.1
done
file=$(curl -sf "${H[@]}" "$base/data/foundation/export/batches/$promoted/files" | field '["data"][0]["dataSetFileId"]')
resource=$(curl -sf "${H[@]}" -H 'content-type: application/json' -X POST "$base/data/foundation/schemaregistry/tenant/datatypes" \
  -d '{"title":"schemathesis","type":"object","properties":{"n":{"type":"integer"}}}' | field '["meta:altId"]')
echo "seeded: schema $schema, dataset $dataset, batches $loading (loading) and $promoted ($state), file $file, data type $resource"
cat > "$data/schemathesis.toml" <<TOML
[dictionaries.datasets]
values = ["$dataset"]
[dictionaries.batches]
values = ["$loading", "$promoted"]
[dictionaries.catalog]
values = ["$dataset", "$loading", "$promoted", "$file"]
[dictionaries.files]
values = ["$file"]
[dictionaries.resources]
values = ["$resource"]
[parameters]
"path.datasetId" = { dictionary = "datasets", probability = 0.7 }
"path.batchId" = { dictionary = "batches", probability = 0.7 }
"path.id" = { dictionary = "catalog", probability = 0.7 }
"path.fileId" = { dictionary = "files", probability = 0.7 }
"path.resourceId" = { dictionary = "resources", probability = 0.7 }
"body.datasetId" = { dictionary = "datasets", probability = 0.7 }
TOML
# Without a newer interpreter, leave out the coverage phase rather than fail now and then.
phases=examples,coverage,fuzzing,stateful
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2> /dev/null; then
  phases=examples,fuzzing,stateful
  echo "Python < 3.12: the coverage phase is left out (CPython 3.11's AST recursion bug)"
fi
started=$(date +%s)
status=0
# Run from the scratch directory: schemathesis keeps a cache of crashes in ./.schemathesis.
(cd "$data" && "$py" -c 'import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())' \
  --config-file "$data/schemathesis.toml" run "$base/openapi.json" \
  --url "$base" "${H[@]}" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,problem_json_on_4xx \
  --phases "$phases" \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-100}" --seed "${SCHEMATHESIS_SEED:-11}" \
  --workers 2 --request-timeout 30 --no-color --generation-database none \
  --report junit,ndjson --report-dir "${SCHEMATHESIS_REPORT_DIR:-$data/report}") || status=$?
echo "schemathesis finished in $(( $(date +%s) - started )) s (exit $status)"
if [ "$status" -ne 0 ]; then
  echo "== server log (errors)"; grep -i "error" "$data/server.log" | tail -n 40 || true
fi
exit "$status"
