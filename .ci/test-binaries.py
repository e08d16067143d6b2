#!/usr/bin/env python3
"""Prints "<package dir> <test binary>" for the test binaries of one package that a
`cargo test --no-run --message-format=json…` build listed on stdin.

usage: test-binaries.py <package> [<test target>]
Without a test target: every test binary of the package (unit tests of its lib and bins,
its integration tests), as `cargo test -p <package>` runs them.
usage: test-binaries.py --bin <name>: the path of that binary (what integration tests run)."""
import json
import os
import sys

if sys.argv[1] == "--bin":
    for line in sys.stdin:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if (
            message.get("reason") == "compiler-artifact"
            and message.get("executable")
            and message["target"]["kind"] == ["bin"]
            and message["target"]["name"] == sys.argv[2]
            and not message.get("profile", {}).get("test")
        ):
            print(message["executable"])
            sys.exit(0)
    sys.exit(f"no binary {sys.argv[2]} in the build's listing")

package = sys.argv[1]
target = sys.argv[2] if len(sys.argv) > 2 else None
found = []
for line in sys.stdin:
    try:
        message = json.loads(line)
    except ValueError:
        continue
    if message.get("reason") != "compiler-artifact" or not message.get("executable"):
        continue
    if not message.get("profile", {}).get("test"):
        continue
    # "path+file:///…/crates/<name>#<version>" or "…#<name>@<version>"
    url, _, fragment = message["package_id"].partition("#")
    name = fragment.split("@")[0] if "@" in fragment else url.rstrip("/").split("/")[-1]
    if name != package:
        continue
    if target is not None and not (
        message["target"]["name"] == target and "test" in message["target"]["kind"]
    ):
        continue
    line = f'{os.path.dirname(message["manifest_path"])} {message["executable"]}'
    if line not in found:
        found.append(line)
if not found:
    sys.exit(f"no test binary of {package} {target or ''} in the build's listing")
print("\n".join(found))
