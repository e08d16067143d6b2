#!/usr/bin/env bash
# Compatibility suite: the curl calls of Adobe's batch-ingestion, data-access and HTTP API
# streaming tutorials,
# unchanged but for the base URL and the token, against a running `lakeport serve`.
# Usage: LAKEPORT_URL=http://127.0.0.1:8080 LAKEPORT_TOKEN=... compat/curl_flow.sh
set -euo pipefail
BASE=${LAKEPORT_URL:-http://127.0.0.1:8080}
TOKEN=${LAKEPORT_TOKEN:?set LAKEPORT_TOKEN}
ORG=C0FFEE0123456789ABCDEF02@AdobeOrg
TENANT=c0ffee0123456789abcdef02
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
H=(-H "Authorization: Bearer $TOKEN" -H "x-api-key: compat-curl" -H "x-gw-ims-org-id: $ORG" -H "x-sandbox-name: prod")
ok() { echo "[ok] $*"; }
fail() { echo "[FAIL] $*"; exit 1; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

# Schema Registry: field group and schema (Adobe's "create a schema" tutorial).
group=$(curl -sf -X POST "$BASE/data/foundation/schemaregistry/tenant/fieldgroups" "${H[@]}" \
  -H 'Accept: application/vnd.adobe.xed+json' -H 'Content-Type: application/json' \
  -d "{\"title\":\"curl loyalty $$\",\"type\":\"object\",\"definitions\":{\"l\":{\"properties\":{\"_$TENANT\":{\"type\":\"object\",\"properties\":{\"loyaltyId\":{\"type\":\"string\"},\"points\":{\"type\":\"integer\"}}}}}},\"allOf\":[{\"\$ref\":\"#/definitions/l\"}]}" | json 'd["$id"]')
schema=$(curl -sf -X POST "$BASE/data/foundation/schemaregistry/tenant/schemas" "${H[@]}" \
  -H 'Content-Type: application/json' \
  -d "{\"title\":\"curl schema $$\",\"type\":\"object\",\"allOf\":[{\"\$ref\":\"https://ns.adobe.com/xdm/context/profile\"},{\"\$ref\":\"$group\"}]}" | json 'd["$id"]')
ok "schema $schema"

# Catalog: create a dataset (the answer is a reference array).
dataset=$(curl -sf -X POST "$BASE/data/foundation/catalog/dataSets?requestDataSource=true" "${H[@]}" \
  -H 'Content-Type: application/json' \
  -d "{\"name\":\"curl dataset\",\"schemaRef\":{\"id\":\"$schema\",\"contentType\":\"application/vnd.adobe.xed+json;version=1\"},\"fileDescription\":{\"persisted\":true,\"containerFormat\":\"parquet\",\"format\":\"json\"}}" | json 'd[0].split("/")[-1]')
ok "dataset $dataset"

# Batch ingestion tutorial: create a batch.
batch=$(curl -sf -X POST "$BASE/data/foundation/import/batches" "${H[@]}" \
  -H 'accept: application/json' -H 'Content-Type: application/json' \
  -d "{\"datasetId\":\"$dataset\",\"inputFormat\":{\"format\":\"json\"}}" | json 'd["id"]')
ok "batch $batch"

# Upload a small file and, chunked, a second one.
for i in $(seq 1 40); do echo "{\"_id\":\"p$i\",\"_$TENANT\":{\"loyaltyId\":\"L-$i\",\"points\":$i}}"; done > "$work/small.json"
for i in $(seq 41 100); do echo "{\"_id\":\"p$i\",\"_$TENANT\":{\"loyaltyId\":\"L-$i\",\"points\":$i}}"; done > "$work/large.json"
code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$BASE/data/foundation/import/batches/$batch/datasets/$dataset/files/small.json" \
  "${H[@]}" -H 'content-type: application/octet-stream' --data-binary "@$work/small.json")
[ "$code" = 200 ] || fail "small file upload answered $code"
ok "small file uploaded"
size=$(stat -c %s "$work/large.json"); half=$((size / 2))
head -c "$half" "$work/large.json" > "$work/part1"; tail -c +"$((half + 1))" "$work/large.json" > "$work/part2"
file="$BASE/data/foundation/import/batches/$batch/datasets/$dataset/files/large.json"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$file?action=INITIALIZE" "${H[@]}")" = 201 ] || fail "INITIALIZE"
curl -sf -X PATCH "$file" "${H[@]}" -H 'content-type: application/octet-stream' \
  -H "Content-Range: bytes $half-$((size - 1))/$size" --data-binary "@$work/part2" > /dev/null
curl -sf -X PATCH "$file" "${H[@]}" -H 'content-type: application/octet-stream' \
  -H "Content-Range: bytes 0-$((half - 1))/$size" --data-binary "@$work/part1" > /dev/null
range=$(curl -sfI "$file" "${H[@]}" | tr -d '\r' | awk -F': ' 'tolower($1)=="range"{print $2}')
[ "$range" = "bytes=0-$((size - 1))" ] || fail "HEAD Range is '$range'"
curl -sf -X POST "$file?action=COMPLETE" "${H[@]}" | grep -q "\"sizeInBytes\":$size" || fail "file COMPLETE"
ok "chunked upload of $size bytes (out of order)"

# Signal completion and poll the Catalog as the dataset tutorial does (`batches?batch=`).
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$BASE/data/foundation/import/batches/$batch?action=COMPLETE" "${H[@]}")" = 200 ] || fail "COMPLETE"
for _ in $(seq 1 600); do
  status=$(curl -sf "$BASE/data/foundation/catalog/batches?batch=$batch" "${H[@]}" | json "d['$batch']['status']")
  case "$status" in success|failed) break;; esac
  sleep 0.2
done
[ "$status" = success ] || fail "batch ended $status"
records=$(curl -sf "$BASE/data/foundation/catalog/batches/$batch" "${H[@]}" | json "d['$batch']['recordCount']")
[ "$records" = 100 ] || fail "recordCount $records"
ok "batch success with $records records"

# Data access tutorial: list the batch's files, follow the links, download (whole and ranged).
files=$(curl -sf "$BASE/data/foundation/export/batches/$batch/files" "${H[@]}")
self=$(echo "$files" | json 'd["data"][0]["_links"]["self"]["href"]')
listing=$(curl -sf "$self" "${H[@]}")
href=$(echo "$listing" | json 'd["data"][0]["_links"]["self"]["href"]')
length=$(echo "$listing" | json 'd["data"][0]["length"]')
curl -sf "$href" "${H[@]}" -o "$work/out.parquet"
[ "$(stat -c %s "$work/out.parquet")" = "$length" ] || fail "download length"
[ "$(head -c 4 "$work/out.parquet")" = PAR1 ] || fail "not a Parquet file"
code=$(curl -s -o "$work/range" -w '%{http_code}' "$href" "${H[@]}" -H 'Range: bytes=0-3')
[ "$code" = 206 ] && [ "$(cat "$work/range")" = PAR1 ] || fail "ranged download answered $code"
ok "downloaded $length bytes of Parquet, and a byte range"
# HTTP API streaming tutorial: base connection, source and target connections, flow, then
# one record (synchronously validated) and several records to the inlet URL.
F="$BASE/data/foundation/flowservice"
base=$(curl -sf -X POST "$F/connections" "${H[@]}" -H 'Content-Type: application/json' \
  -d '{"name":"curl streaming","providerId":"521eee4d-8cbe-4906-bb48-fb6bd4450033","connectionSpec":{"id":"bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb","version":"1.0"},"auth":{"specName":"Streaming Connection","params":{"sourceId":"curl","dataType":"xdm","name":"curl"}}}' | json 'd["id"]')
inlet_url=$(curl -sf "$F/connections/$base" "${H[@]}" | json 'd["items"][0]["auth"]["params"]["inletUrl"]')
source=$(curl -sf -X POST "$F/sourceConnections" "${H[@]}" -H 'Content-Type: application/json' \
  -d "{\"name\":\"curl source\",\"baseConnectionId\":\"$base\",\"connectionSpec\":{\"id\":\"bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb\",\"version\":\"1.0\"}}" | json 'd["id"]')
target=$(curl -sf -X POST "$F/targetConnections" "${H[@]}" -H 'Content-Type: application/json' \
  -d "{\"name\":\"curl target\",\"data\":{\"schema\":{\"id\":\"$schema\",\"version\":\"application/vnd.adobe.xed-full+json;version=1\"}},\"params\":{\"dataSetId\":\"$dataset\"},\"connectionSpec\":{\"id\":\"c604ff05-7f1a-43c0-8e18-33bf874cb11c\",\"version\":\"1.0\"}}" | json 'd["id"]')
curl -sf -X POST "$F/flows" "${H[@]}" -H 'Content-Type: application/json' \
  -d "{\"name\":\"curl flow\",\"flowSpec\":{\"id\":\"d8a6f005-7eaf-4153-983e-e8574508b877\",\"version\":\"1.0\"},\"sourceConnectionIds\":[\"$source\"],\"targetConnectionIds\":[\"$target\"]}" > /dev/null
ok "streaming flow to $inlet_url"
record() { echo "{\"header\":{\"schemaRef\":{\"id\":\"$schema\",\"contentType\":\"application/vnd.adobe.xed-full+json;version=1\"},\"imsOrgId\":\"$ORG\",\"datasetId\":\"$dataset\",\"source\":{\"name\":\"curl\"}},\"body\":{\"xdmMeta\":{\"schemaRef\":{\"id\":\"$schema\",\"contentType\":\"application/vnd.adobe.xed-full+json;version=1\"}},\"xdmEntity\":{\"_id\":\"s$1\",\"_$TENANT\":{\"loyaltyId\":\"S-$1\",\"points\":$1}}}}"; }
curl -sf -X POST "$inlet_url?syncValidation=true" -H 'Content-Type: application/json' -d "$(record 1)" | grep -q '"status":"pass"' || fail "streamed record"
code=$(curl -s -o "$work/batch.json" -w '%{http_code}' -X POST "${inlet_url/collection/collection/batch}" -H 'Content-Type: application/json' -d "{\"messages\":[$(record 2),$(record 3)]}")
[ "$code" = 207 ] && [ "$(json 'len([r for r in d["responses"] if "xactionId" in r])' < "$work/batch.json")" = 2 ] || fail "batch of records answered $code"
for _ in $(seq 1 600); do
  streamed=$(curl -sf "$BASE/data/foundation/catalog/batches?dataSet=$dataset" "${H[@]}" | json "[b['recordCount'] for b in d.values() if b.get('externalId') == 'stream:$dataset:1' and b['status'] == 'success']")
  [ "$streamed" = "[3]" ] && break
  sleep 0.1
done
[ "$streamed" = "[3]" ] || fail "streamed records did not land as a successful batch: $streamed"
ok "3 streamed records landed in batch stream:$dataset:1"

# Query Service (spec §11): psql (Debian's postgresql-client) logs in with the org id and the
# token, lists the dataset's table with \dt and SELECTs the rows just ingested: the batch's
# 100 (points 1..100) and the 3 streamed ones (points 1..3).
if [ -n "${LAKEPORT_QUERY_PORT:-}" ]; then
  if ! command -v psql >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-client >/dev/null
  fi
  table=$(curl -sf "$BASE/data/foundation/catalog/dataSets/$dataset" "${H[@]}" | json "d['$dataset']['tags']['adobe/pqs/table'][0]")
  pq() { PGPASSWORD="$TOKEN" psql "host=127.0.0.1 port=$LAKEPORT_QUERY_PORT user=$ORG dbname=prod:all" -X -v ON_ERROR_STOP=1 "$@"; }
  pq -c '\dt' | grep -qw "$table" || fail "psql \\dt does not list $table"
  got=$(pq -Atc "SELECT count(*), sum(_$TENANT.points), min(_$TENANT.\"loyaltyId\") FROM $table WHERE _$TENANT.points > 0")
  [ "$got" = "103|5056|L-1" ] || fail "psql SELECT returned '$got', expected 103|5056|L-1"
  ok "psql: \\dt lists $table, SELECT over _$TENANT.points returns $got"
fi
echo "curl flow: all checks passed"
