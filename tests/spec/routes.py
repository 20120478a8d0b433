#!/usr/bin/env python3
"""Writes routes.txt: every path and method of the Matrix spec's client-server API that is not
deprecated, one `METHOD PATH MODULE` a line, from the spec's OpenAPI files.

    python3 tests/spec/routes.py ../shared/matrix-spec/client-server > tests/spec/routes.txt

The route coverage test (tests/tests/route_coverage.rs) reads routes.txt, so that it runs on
a checkout without the spec files; run this again when the spec files change."""
import glob
import os
import sys

import yaml

spec = sys.argv[1]
routes = []
for path in sorted(glob.glob(os.path.join(spec, "*.yaml"))):
    doc = yaml.safe_load(open(path))
    if not doc or "paths" not in doc:
        continue
    prefix = ""
    for server in doc.get("servers", []):
        prefix = server.get("variables", {}).get("basePath", {}).get("default", prefix)
    for route, ops in doc["paths"].items():
        for method, op in ops.items():
            if method in ("get", "put", "post", "delete") and not op.get("deprecated"):
                routes.append((method.upper(), prefix + route, os.path.basename(path)[:-5]))
print(f"# {len(routes)} routes, not deprecated, of the client-server API (the spec's OpenAPI files, up to v1.18)")
for method, route, module in routes:
    print(method, route, module)
