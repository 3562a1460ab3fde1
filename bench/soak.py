#!/usr/bin/env python3
"""Soak test of `flashneox serve` on loopback: for a fixed time, many
connections at once mix streaming and non-streaming generation, clients that
vanish mid-request, malformed and oversized requests (Content-Length and
chunked), slow senders and idle keep-alive connections. Bounded in time and
count; talks only to the server it starts on 127.0.0.1.

Afterwards it demands: the server never died, no 5xx but the documented 503s
(connection limit, shutdown), every KV block back, resident memory flat (the
last sample within 20% of the one taken after the warm-up), and a clean exit
on SIGTERM.

    python3 bench/soak.py --seconds 600 --connections 1000      # the full run
    python3 bench/soak.py --seconds 60                           # what make test runs
"""
import argparse
import asyncio
import collections
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


class Http:
    """A minimal HTTP/1.1 client on asyncio streams (one request per connection)."""

    def __init__(self, port):
        self.port = port

    async def request(self, raw, read_body=True, timeout=60.0, body_source=None):
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 10)
        try:
            writer.write(raw)
            if body_source is not None:
                async for piece in body_source:
                    writer.write(piece)
                    await writer.drain()
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            status = int(head.split(b" ", 2)[1])
            if not read_body:
                return status, b""
            headers = head.decode(errors="replace").lower()
            m = re.search(r"content-length: *(\d+)", headers)
            if m:
                body = await asyncio.wait_for(reader.readexactly(int(m.group(1))), timeout)
            elif "transfer-encoding: chunked" in headers:
                body = b""
                while True:
                    size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)
                    size = int(size_line.strip() or b"0", 16)
                    chunk = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
                    body += chunk[:-2]
                    if size == 0:
                        break
            else:
                body = await asyncio.wait_for(reader.read(), timeout)
            return status, body
        finally:
            writer.close()


def post(path, body, extra=b""):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (b"POST %s HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\nConnection: close\r\n%s"
            b"Content-Length: %d\r\n\r\n" % (path.encode(), extra, len(data))) + data


PROMPTS = ["ROMEO:", "First Citizen:\nBefore we proceed", "To be, or not to be", "JULIET:\nO Romeo",
           "KING RICHARD III:\nNow is the winter", "What say you?"]


async def scenario(http, kind, stats):
    prompt = random.choice(PROMPTS)
    if kind == "generate":
        return (await http.request(post("/generate", {"inputs": prompt, "parameters": {
            "max_new_tokens": random.randint(4, 24), "do_sample": random.random() < 0.5, "seed": 1}})))[0]
    if kind == "stream":
        return (await http.request(post("/generate_stream", {"inputs": prompt, "parameters": {
            "max_new_tokens": random.randint(4, 24)}})))[0]
    if kind == "openai":
        return (await http.request(post("/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}],
                                                                 "max_tokens": 8, "stream": random.random() < 0.5})))[0]
    if kind == "vanish":  # starts a long request and leaves without reading it
        reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
        path = random.choice(["/generate", "/generate_stream"])
        writer.write(post(path, {"inputs": prompt, "parameters": {"max_new_tokens": 400}}))
        await writer.drain()
        await asyncio.sleep(random.uniform(0.05, 0.5))
        writer.close()
        return None
    if kind == "bad":
        body = random.choice([b"{not json", b'{"inputs": 5}', b'{"inputs":"x","parameters":{"top_k":-1}}',
                              b'{"inputs":"x","nope":1}', b"[" * 5000 + b"]" * 5000,
                              b'{"inputs":"x","parameters":{"seed":1e99}}', b"\xff\xfe\xfd"])
        path = random.choice(["/generate", "/v1/completions", "/v1/chat/completions", "/tokenize"])
        return (await http.request(post(path, body)))[0]
    if kind == "method":
        return (await http.request(b"DELETE /generate HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"))[0]
    if kind == "oversized":
        return (await http.request(b"POST /generate HTTP/1.1\r\nHost: soak\r\nContent-Length: 50000000\r\n\r\n"))[0]
    if kind == "chunked":
        async def pieces():
            for _ in range(24):  # 3 MB in chunks, over the 1 MiB limit
                block = b"x" * 131072
                yield b"%x\r\n%s\r\n" % (len(block), block)
            yield b"0\r\n\r\n"
        try:
            return (await http.request(b"POST /generate HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n"
                                       b"Connection: close\r\n\r\n", body_source=pieces()))[0]
        except (ConnectionError, asyncio.IncompleteReadError):
            return 413  # answered and closed while we were still sending
    if kind == "slow":  # sends its headers slowly, then stalls until dropped
        reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
        try:
            for piece in (b"POST /generate HTTP/1.1\r\n", b"Host: soak\r\n", b"X-Slow: 1\r\n"):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(1.0)
            await asyncio.wait_for(reader.read(), 20)  # the header deadline closes it
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()
        return None
    if kind == "idle":  # a keep-alive connection that never sends
        reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
        try:
            await asyncio.wait_for(reader.read(), 20)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            writer.close()
        return None
    if kind == "cheap":
        return (await http.request(random.choice([
            b"GET /health HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n",
            post("/tokenize", {"inputs": prompt * 50})])))[0]
    raise ValueError(kind)


KINDS = (["generate"] * 4 + ["stream"] * 4 + ["openai"] * 2 + ["vanish"] * 2 + ["bad"] * 3 + ["method"] +
         ["oversized"] + ["chunked"] + ["slow"] + ["idle"] + ["cheap"] * 3)


async def client(http, deadline, stats):
    while time.time() < deadline:
        kind = random.choice(KINDS)
        try:
            status = await scenario(http, kind, stats)
            if status is not None:
                stats["status"][status] += 1
                stats["by_kind"][(kind, status)] += 1
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, OSError) as e:
            stats["client_errors"][type(e).__name__] += 1
        stats["scenarios"] += 1


def metric(port, name):
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


async def main_async(args, port, proc):
    http = Http(port)
    stats = {"status": collections.Counter(), "by_kind": collections.Counter(),
             "client_errors": collections.Counter(), "scenarios": 0}
    start = time.time()
    deadline = start + args.seconds
    tasks = [asyncio.create_task(client(http, deadline, stats)) for _ in range(args.connections)]
    samples = []
    warm = start + min(args.seconds * 0.15, 30)
    while time.time() < deadline:
        await asyncio.sleep(min(5, max(0.1, deadline - time.time())))
        if proc.poll() is not None:
            break
        if time.time() >= warm:
            samples.append(rss_mib(proc.pid))
    await asyncio.wait(tasks, timeout=90)
    return stats, samples


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=os.environ.get("FLASHNEOX_BINARY", os.path.join(ROOT, "build", "flashneox")))
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    random.seed(args.seed)
    log = tempfile.NamedTemporaryFile(prefix="flashneox-soak-", suffix=".log", delete=False)
    proc = subprocess.Popen([args.binary, "serve", "--port", "0", "--kv-cache-memory", "128MiB",
                             "--header-timeout", "5", "--keep-alive-timeout", "5", "--max-connections", "4096"],
                            stderr=log, stdout=subprocess.DEVNULL)
    port = None
    for _ in range(600):
        with open(log.name) as f:
            m = re.search(r"serving on http://127\.0\.0\.1:(\d+)", f.read())
        if m:
            port = int(m.group(1))
            break
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    if port is None:
        print(open(log.name).read())
        sys.exit("soak: the server did not start")
    stats, samples = asyncio.run(main_async(args, port, proc))
    problems = []
    if proc.poll() is not None:
        problems.append(f"the server died (exit {proc.returncode})")
    else:
        deadline = time.time() + 30
        used = metric(port, "flashneox_kv_cache_blocks_used")
        while used != 0 and time.time() < deadline:
            time.sleep(0.2)
            used = metric(port, "flashneox_kv_cache_blocks_used")
        if used != 0:
            problems.append(f"{used:.0f} KV blocks still in use after the load")
    bad_5xx = {s: n for s, n in stats["status"].items() if s >= 500 and s != 503}
    if bad_5xx:
        problems.append(f"5xx answers: {bad_5xx}")
    if len(samples) >= 2 and samples[-1] > samples[0] * 1.2:
        problems.append(f"resident memory grew from {samples[0]:.0f} to {samples[-1]:.0f} MiB")
    exit_code = None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            exit_code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            problems.append("the server did not exit within 60 s of SIGTERM")
        if exit_code not in (0, None):
            problems.append(f"exit code {exit_code} after SIGTERM")
    with open(log.name) as f:
        lines = f.read().splitlines()
    requests_logged = sum(1 for line in lines if re.match(r"\d{4}-\d\d-\d\dT", line))
    print(f"soak: {args.seconds:.0f} s, {args.connections} connections, {stats['scenarios']} scenarios, "
          f"{requests_logged} requests in the access log")
    print("soak: statuses " + ", ".join(f"{s}: {n}" for s, n in sorted(stats["status"].items())))
    if stats["client_errors"]:
        print("soak: client-side connection ends " + ", ".join(f"{k}: {n}" for k, n in stats["client_errors"].items()))
    if samples:
        print(f"soak: resident memory {samples[0]:.0f} MiB after warm-up, {max(samples):.0f} MiB peak, "
              f"{samples[-1]:.0f} MiB at the end")
    print(f"soak: server exit code after SIGTERM: {exit_code}")
    if problems:
        print("soak: FAILED: " + "; ".join(problems))
        print("soak: server log: " + log.name)
        sys.exit(1)
    os.unlink(log.name)
    print("soak: passed")


if __name__ == "__main__":
    main()
