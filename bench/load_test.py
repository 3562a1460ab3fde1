#!/usr/bin/env python3
"""Load run on loopback: N concurrent streaming clients against a fresh
`flashneox serve` for a fixed time. Reports requests completed, errors, p50/p99
time to first token and inter-token latency, and server memory before and after.

    build/test-venv/bin/python bench/load_test.py [--clients 64] [--seconds 60] [--max-new-tokens 64]

Only 127.0.0.1 is ever contacted; every loop is bounded in time.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import requests

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "server"))
from conftest import RunningServer  # noqa: E402

PROMPTS = ["ROMEO:\n", "First Citizen:\nBefore we proceed any further, hear me speak.\n", "JULIET:\n",
           "KING RICHARD III:\nNow is the winter of our discontent\n", "To be, or not to be"]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def client(url, deadline, args, index, results, lock):
    session = requests.Session()
    n = 0
    while time.time() < deadline:
        body = {"inputs": PROMPTS[(index + n) % len(PROMPTS)],
                "parameters": {"max_new_tokens": args.max_new_tokens, "do_sample": True, "temperature": 0.8,
                               "seed": index * 1000 + n, "ignore_eos_token": True}}
        n += 1
        start = time.perf_counter()
        last = None
        ttft = None
        gaps = []
        ok = False
        try:
            with session.post(url + "/generate_stream", json=body, stream=True, timeout=120) as r:
                if r.status_code != 200:
                    raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
                for line in r.iter_lines():
                    if not line.startswith(b"data:"):
                        continue
                    event = json.loads(line[5:])
                    if "error" in event:
                        raise RuntimeError(event["error"])
                    now = time.perf_counter()
                    if ttft is None:
                        ttft = now - start
                    else:
                        gaps.append(now - last)
                    last = now
                    if event.get("details"):
                        ok = True
            with lock:
                if ok:
                    results["completed"] += 1
                    results["tokens"] += 1 + len(gaps)
                    results["ttft"].append(ttft)
                    results["itl"].extend(gaps)
                else:
                    results["errors"].append("stream ended without a final event")
        except Exception as e:  # noqa: BLE001 - every failure is counted
            with lock:
                results["errors"].append(str(e))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--server-args", default="--kv-cache-memory 512MiB")
    args = ap.parse_args()
    server = RunningServer(*args.server_args.split())
    try:
        requests.post(server.url + "/generate", json={"inputs": "warm", "parameters": {"max_new_tokens": 2}})
        before = rss_mib(server.proc.pid)
        results = {"completed": 0, "tokens": 0, "ttft": [], "itl": [], "errors": []}
        lock = threading.Lock()
        deadline = time.time() + args.seconds
        started = time.time()
        threads = [threading.Thread(target=client, args=(server.url, deadline, args, i, results, lock))
                   for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=args.seconds + 180)
        elapsed = time.time() - started
        after = rss_mib(server.proc.pid)
        idle_blocks = server.metric("flashneox_kv_cache_blocks_used")
        print(f"clients {args.clients}, {elapsed:.0f} s, max_new_tokens {args.max_new_tokens}")
        print(f"requests completed {results['completed']}, errors {len(results['errors'])}")
        print(f"tokens streamed {results['tokens']} ({results['tokens'] / elapsed:.0f} tokens/s aggregate)")
        print(f"time to first token p50 {percentile(results['ttft'], 50) * 1000:.0f} ms, "
              f"p99 {percentile(results['ttft'], 99) * 1000:.0f} ms")
        print(f"inter-token latency p50 {percentile(results['itl'], 50) * 1000:.1f} ms, "
              f"p99 {percentile(results['itl'], 99) * 1000:.1f} ms")
        print(f"server RSS before {before:.0f} MiB, after {after:.0f} MiB; KV blocks in use after: {idle_blocks:.0f}")
        for e in results["errors"][:5]:
            print("error:", e)
        return 1 if results["errors"] else 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
