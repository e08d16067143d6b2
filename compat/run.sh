#!/usr/bin/env bash
# Runs the real-client compatibility suite (aepp from PyPI, Adobe's tutorial curl calls, the
# deltalake and polars packages reading the datasets' Delta tables, and the Query Service
# through aepp and psycopg2) against a freshly started `lakeport serve`. CI calls this after
# the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check aepp==0.6.0 duckdb deltalake==1.6.6 polars==2.1.0 pyarrow psycopg2-binary
port=${COMPAT_PORT:-18181}
source compat/serve.sh
start_lakeport "$port" compat-token
export LAKEPORT_URL="http://127.0.0.1:$port" LAKEPORT_TOKEN=compat-token
echo "== aepp $(python3 -c 'import aepp; print(aepp.__version__)')"
python3 compat/aepp_flow.py
echo "== curl flows of Adobe's tutorials"
bash compat/curl_flow.sh
echo "== Delta tables read by deltalake and polars"
python3 compat/delta_flow.py
echo "== Query Service: aepp QueryService and InteractiveQuery2, psycopg2"
python3 compat/query_flow.py
