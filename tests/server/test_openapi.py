"""GET /openapi.json, and schemathesis driving every route from it against a
live server: no 5xx, status codes, content types and bodies as documented,
and the server still serving afterwards. `make fuzz-api` runs it longer."""
import os
import subprocess
import sys

import requests

EXAMPLES = int(os.environ.get("FLASHNEOX_API_FUZZ_EXAMPLES", "15"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_openapi_document_is_served(server):
    doc = requests.get(server.url + "/openapi.json", timeout=10).json()
    assert doc["openapi"] == "3.1.0"
    assert {"/generate", "/v1/chat/completions", "/openapi.json"} <= set(doc["paths"])


def test_schemathesis_finds_nothing(make_server):
    # Short generations keep each example fast: prompts + new tokens <= 64.
    s = make_server("--max-total-tokens", "64", "--no-access-log")
    schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    run = subprocess.run([schemathesis, "run", s.url + "/openapi.json", "--max-examples", str(EXAMPLES),
                          "--checks", CHECKS, "--seed", "20261128", "--request-timeout", "120",
                          "--generation-database", "none", "--no-color"],
                         capture_output=True, text=True, timeout=1200)
    summary = run.stdout[-6000:]
    print(summary[-1500:])  # the figures (make fuzz-api shows them)
    assert run.returncode == 0, summary
    assert "passed" in summary, summary
    assert s.alive()
    assert requests.get(s.url + "/health", timeout=10).status_code == 200
    assert s.metric("flashneox_kv_cache_blocks_used") == 0
