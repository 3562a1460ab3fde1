"""What an attacker or a careless client does to a real server process: each
case gets a clear answer and the server keeps serving, with nothing leaked."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import requests

from conftest import BINARY, RunningServer, cli_greedy


def host_port(server):
    m = re.match(r"http://([^:]+):(\d+)", server.url)
    return m.group(1), int(m.group(2))


def raw_request(server, data, timeout=10):
    """Sends raw bytes, returns (status, headers text, body) of the reply."""
    with socket.create_connection(host_port(server), timeout=timeout) as s:
        s.sendall(data)
        reply = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
                if b"\r\n\r\n" in reply:
                    head, _, body = reply.partition(b"\r\n\r\n")
                    m = re.search(rb"content-length: *(\d+)", head, re.I)
                    if m and len(body) >= int(m.group(1)):
                        break
        except (ConnectionResetError, socket.timeout):
            pass
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1") else None
    return status, head.decode(errors="replace"), body


def assert_serving(server):
    assert server.alive()
    r = requests.post(server.url + "/generate", json={"inputs": "ROMEO:", "parameters": {"max_new_tokens": 2}},
                      timeout=30)
    assert r.status_code == 200, r.text


def wait_blocks_idle(server, seconds=5.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if server.metric("flashneox_kv_cache_blocks_used") == 0:
            return True
        time.sleep(0.05)
    return False


def test_deeply_nested_json_is_a_400(server):
    # 60,000 nested objects in 360 KB once crashed the server (recursive copy).
    body = '{"inputs":"hi","parameters":{"x":' + '{"a":' * 60000 + '1' + '}' * 60000 + '}}'
    r = requests.post(server.url + "/generate", data=body, timeout=10)
    assert r.status_code == 400 and "nests deeper" in r.json()["error"]
    for path in ("/v1/completions", "/v1/chat/completions", "/tokenize"):
        r = requests.post(server.url + path, data="[" * 100000 + "]" * 100000, timeout=10)
        assert r.status_code == 400, (path, r.text)
    assert_serving(server)


def test_numbers_are_refused_not_truncated(server):
    cases = [
        ("/generate", {"inputs": "x", "parameters": {"top_n_tokens": 4294967297}}, "top_n_tokens"),
        ("/generate", {"inputs": "x", "parameters": {"seed": 1e30}}, "seed"),
        ("/generate", {"inputs": "x", "parameters": {"seed": 18446744073709551615}}, "seed"),
        ("/generate", {"inputs": "x", "parameters": {"max_new_tokens": 4294967297}}, "max_new_tokens"),
        ("/generate", {"inputs": "x", "parameters": {"truncate": -1}}, "truncate"),
        ("/generate", {"inputs": "x", "parameters": {"frobnicate": 1}}, "frobnicate"),
        ("/generate", {"inputs": "x", "wat": 1}, "wat"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "logprobs": True,
                                  "top_logprobs": 4294967297}, "top_logprobs"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "seed": 1e30}, "seed"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "tools": []}, "tools"),
        ("/v1/completions", {"prompt": "x", "max_tokens": 1e12}, "max_tokens"),
        ("/v1/completions", {"prompt": "x", "logprobs": 6}, "logprobs"),
        ("/v1/completions", {"prompt": "x", "unknown_field": True}, "unknown_field"),
    ]
    for path, body, field in cases:
        r = requests.post(server.url + path, json=body, timeout=10)
        assert r.status_code == 422, (path, body, r.status_code, r.text)
        assert field in r.json()["error"], (field, r.text)
    assert_serving(server)


def test_completions_logprobs_are_implemented(server):
    r = requests.post(server.url + "/v1/completions", json={
        "prompt": "ROMEO:", "max_tokens": 4, "temperature": 0, "logprobs": 2}, timeout=30).json()
    lp = r["choices"][0]["logprobs"]
    assert len(lp["tokens"]) == 4 and len(lp["token_logprobs"]) == 4 and len(lp["top_logprobs"]) == 4
    assert all(x <= 0 for x in lp["token_logprobs"]) and all(len(t) <= 2 for t in lp["top_logprobs"])
    assert "".join(lp["tokens"]) == r["choices"][0]["text"]
    assert lp["text_offset"][0] == 0 and lp["text_offset"][1] == len(lp["tokens"][0])
    echoed = requests.post(server.url + "/v1/completions", json={
        "prompt": "ROMEO:", "max_tokens": 2, "temperature": 0, "logprobs": 0, "echo": True}, timeout=30).json()
    elp = echoed["choices"][0]["logprobs"]
    assert elp["token_logprobs"][0] is None and len(elp["tokens"]) == 4 + 2  # the prompt's 4 tokens first
    with requests.post(server.url + "/v1/completions", stream=True, json={
            "prompt": "ROMEO:", "max_tokens": 3, "temperature": 0, "logprobs": 1, "stream": True}) as s:
        chunks = [json.loads(line[5:]) for line in s.iter_lines(decode_unicode=True)
                  if line.startswith("data:") and "[DONE]" not in line]
    with_lp = [c for c in chunks if c["choices"] and c["choices"][0]["logprobs"]]
    assert len(with_lp) == 3


def test_tiny_temperature_is_greedy(server):
    r = requests.post(server.url + "/generate", json={"inputs": "ROMEO:", "parameters": {
        "max_new_tokens": 8, "do_sample": True, "temperature": 1e-300, "details": True}}, timeout=30).json()
    assert r["generated_text"] == cli_greedy("ROMEO:", 8)
    assert all(t["id"] != 50303 for t in r["details"]["tokens"])


def test_wrong_method_is_405_with_allow(server):
    r = requests.get(server.url + "/generate", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
    r = requests.delete(server.url + "/health", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    assert requests.get(server.url + "/nowhere", timeout=10).status_code == 404


def test_chunked_body_over_the_limit_is_413(server):
    def chunks():
        block = b"x" * (1 << 20)
        for _ in range(20):  # 20 MB, far over the 1 MiB default
            yield block
    r = requests.post(server.url + "/generate", data=chunks(), timeout=30)
    assert r.status_code == 413
    # Content-Length over the limit: refused before the body is read.
    status, _, _ = raw_request(server, b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
    assert status == 413
    assert_serving(server)


def test_header_limits_are_431(server):
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    status, _, _ = raw_request(server, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status == 431
    status, _, _ = raw_request(server, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
    assert status == 431
    status, _, _ = raw_request(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert status == 400
    assert_serving(server)


def slowloris(server, count):
    """Opens `count` connections that send half a request line and stall."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(host_port(server), timeout=10)
        s.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    return socks


def test_slow_connections_do_not_starve_a_normal_request(make_server):
    s = make_server("--header-timeout", "3")
    for count in (150, 1000):
        socks = slowloris(s, count)
        start = time.time()
        r = requests.post(s.url + "/generate", json={"inputs": "ROMEO:", "parameters": {"max_new_tokens": 4}},
                          timeout=30)
        took = time.time() - start
        assert r.status_code == 200 and took < 2.0, (count, took)
        for sock in socks:
            sock.close()
    # And the stalled ones are dropped at the header deadline.
    socks = slowloris(s, 5)
    time.sleep(4)
    for sock in socks:
        sock.settimeout(2)
        assert sock.recv(100) == b""  # closed by the server
        sock.close()
    assert_serving(s)


def test_idle_keep_alive_connections_are_closed(make_server):
    s = make_server("--keep-alive-timeout", "1")
    with socket.create_connection(host_port(s), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while b"{}" not in reply:
            reply += sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200")
        start = time.time()
        assert sock.recv(100) == b""  # the server closes the idle connection
        assert 0.5 < time.time() - start < 5


def test_connection_limit_answers_503_at_once(make_server):
    s = make_server("--max-connections", "20")
    socks = slowloris(s, 20)
    time.sleep(0.3)
    start = time.time()
    r = requests.get(s.url + "/health", timeout=10)
    assert r.status_code == 503 and time.time() - start < 1.0
    assert r.json()["error_type"] == "overloaded"
    for sock in socks:
        sock.close()
    time.sleep(0.3)
    assert requests.get(s.url + "/health", timeout=10).status_code == 200


def test_second_server_on_the_same_port_refuses_to_start(server):
    _, port = host_port(server)
    p = subprocess.run([BINARY, "serve", "--port", str(port), "--kv-cache-memory", "32MiB"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "cannot listen" in p.stderr and "in use" in p.stderr
    assert_serving(server)


def test_non_streaming_client_that_leaves_is_cancelled(server):
    text_before = requests.get(server.url + "/metrics").text
    cancelled_before = float(re.search(r'outcome="cancelled"} (\S+)', text_before).group(1)) \
        if 'outcome="cancelled"' in text_before else 0.0
    body = json.dumps({"inputs": "ROMEO:", "parameters": {"max_new_tokens": 1500, "ignore_eos_token": True}})
    sock = socket.create_connection(host_port(server))
    sock.sendall(("POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                  % (len(body), body)).encode())
    deadline = time.time() + 10
    while server.metric("flashneox_kv_cache_blocks_used") == 0 and time.time() < deadline:
        time.sleep(0.02)
    assert server.metric("flashneox_kv_cache_blocks_used") > 0
    sock.close()
    left = time.time()
    assert wait_blocks_idle(server, 1.0), "blocks not back within a second"
    assert time.time() - left < 1.0
    text = requests.get(server.url + "/metrics").text
    assert float(re.search(r'outcome="cancelled"} (\S+)', text).group(1)) == cancelled_before + 1
    assert any(" POST /generate 499 " in line for line in server.log)


def test_api_key_is_checked(make_server):
    s = make_server("--api-key", "sesame-0123456789")
    for key in ("", "sesame", "sesame-0123456789x", "Sesame-0123456789", "sesame-012345678"):
        r = requests.get(s.url + "/info", headers={"Authorization": "Bearer " + key}, timeout=10)
        assert r.status_code == 401, key
    r = requests.get(s.url + "/info", headers={"Authorization": "Bearer sesame-0123456789"}, timeout=10)
    assert r.status_code == 200


def test_access_log_text_json_and_off(make_server):
    s = make_server()
    requests.post(s.url + "/generate", json={"inputs": "ROMEO:", "parameters": {"max_new_tokens": 3}}, timeout=30)
    time.sleep(0.2)
    line = [x for x in s.log if " POST /generate " in x][-1]
    assert re.match(r"\d{4}-\d\d-\d\dT\S+Z 127\.0\.0\.1:\d+ POST /generate 200 prompt_tokens=4 generated_tokens=3 "
                    r"queue_ms=[\d.]+ total_ms=[\d.]+$", line.strip()), line
    j = make_server("--log-format", "json")
    requests.get(j.url + "/health", timeout=10)
    requests.post(j.url + "/generate", json={"inputs": "ROMEO:", "parameters": {"max_new_tokens": 2}}, timeout=30)
    time.sleep(0.2)
    records = [json.loads(x) for x in j.log if x.startswith("{")]
    gen = [r for r in records if r["route"] == "/generate"][-1]
    assert gen["status"] == 200 and gen["generated_tokens"] == 2 and gen["prompt_tokens"] == 4
    assert "queue_ms" in gen and "total_ms" in gen and "time" in gen and gen["client"].startswith("127.0.0.1:")
    quiet = make_server("--no-access-log")
    requests.get(quiet.url + "/health", timeout=10)
    time.sleep(0.2)
    assert not any("/health" in x for x in quiet.log)


def test_sigterm_lets_short_requests_finish_and_ends_long_ones(make_server):
    s = make_server("--shutdown-timeout", "2")
    results = {}

    def short():
        results["short"] = requests.post(s.url + "/generate", json={
            "inputs": "ROMEO:", "parameters": {"max_new_tokens": 30}}, timeout=30)

    def long():
        results["long"] = requests.post(s.url + "/generate", json={
            "inputs": "ROMEO:", "parameters": {"max_new_tokens": 1900, "ignore_eos_token": True}}, timeout=60)

    def stream():
        events = []
        with requests.post(s.url + "/generate_stream", stream=True, json={
                "inputs": "ROMEO:", "parameters": {"max_new_tokens": 1900, "ignore_eos_token": True}}, timeout=60) as r:
            for line in r.iter_lines(decode_unicode=True):
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
        results["stream"] = events

    threads = [threading.Thread(target=f) for f in (short, long, stream)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    start = time.time()
    s.proc.send_signal(signal.SIGTERM)
    s.proc.wait(timeout=20)
    took = time.time() - start
    for t in threads:
        t.join(timeout=10)
    assert s.proc.returncode == 0
    assert took < 2 + 5, took
    assert results["short"].status_code == 200
    assert results["long"].status_code == 503 and results["long"].json()["error_type"] == "unavailable"
    assert "error" in results["stream"][-1] and "shutting down" in results["stream"][-1]["error"]


def test_second_signal_exits_at_once(make_server):
    s = make_server("--shutdown-timeout", "60")
    def held():  # the process exits under it: a dropped connection is the expected end
        try:
            requests.post(s.url + "/generate", json={
                "inputs": "ROMEO:", "parameters": {"max_new_tokens": 1900, "ignore_eos_token": True}}, timeout=60)
        except requests.ConnectionError:
            pass
    t = threading.Thread(target=held)
    t.start()
    time.sleep(0.5)
    s.proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert s.proc.poll() is None  # still draining
    start = time.time()
    s.proc.send_signal(signal.SIGINT)
    s.proc.wait(timeout=5)
    assert time.time() - start < 2 and s.proc.returncode != 0
    t.join(timeout=10)


def test_damaged_models_are_clear_errors_at_start(tmp_path):
    from conftest import ROOT
    import shutil
    src = os.path.join(ROOT, "models", "neox-shakespeare")

    def start_error(model):
        p = subprocess.run([BINARY, "serve", "--port", "0", "--model", str(model), "--kv-cache-memory", "32MiB"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0
        return p.stderr

    fifo = tmp_path / "fifo"
    shutil.copytree(src, fifo)
    os.remove(fifo / "tokenizer.json")
    os.mkfifo(fifo / "tokenizer.json")
    assert "not a regular file" in start_error(fifo)
    big = tmp_path / "bigid"
    shutil.copytree(src, big)
    tok = json.loads((big / "tokenizer.json").read_text())
    tok["added_tokens"].append({"id": 1 << 26, "content": "<huge>", "special": True})
    (big / "tokenizer.json").write_text(json.dumps(tok))
    assert "<huge>" in start_error(big)
    wide = tmp_path / "wide"
    shutil.copytree(src, wide)
    tok = json.loads((wide / "tokenizer.json").read_text())
    tok["added_tokens"].append({"id": 60000, "content": "<wide>", "special": True})
    (wide / "tokenizer.json").write_text(json.dumps(tok))
    assert "vocab_size" in start_error(wide)


def test_chat_template_trouble_never_stops_the_server(make_server, tmp_path):
    from conftest import ROOT
    import shutil
    model = tmp_path / "model"
    shutil.copytree(os.path.join(ROOT, "models", "neox-shakespeare"), model)
    (model / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{" + "(" * 50000 + "1" + ")" * 50000 + "}}"}))
    s = make_server("--model", str(model))
    assert any("nests deeper" in line for line in s.log)
    (model / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ 123456789012345678901234567890 }}"}))
    s2 = make_server("--model", str(model))
    assert any("integer literal" in line and "too large" in line for line in s2.log)
    r = requests.post(s2.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                             "max_tokens": 2}, timeout=30)
    assert r.status_code == 200


def test_generate_refuses_positions_past_the_model(tmp_path):
    p = subprocess.run([BINARY, "generate", "--prompt", "ROMEO:", "--max-new-tokens", "3000"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "max_position_embeddings" in p.stderr
    p = subprocess.run([BINARY, "generate", "--prompt", "ROMEO:", "--max-new-tokens", "2147483647"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "max_position_embeddings" in p.stderr


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def test_memory_stays_flat_under_large_requests(make_server):
    s = make_server("--max-body-bytes", "2MiB")
    # Half-megabyte prompts: each response is about 6 MB of JSON.
    text = ("First Citizen: Before we proceed any further, hear me speak. " * 9000)[:500000]
    body = json.dumps({"inputs": text})
    session = requests.Session()

    def burst(n):
        threads = [threading.Thread(target=lambda: [session.post(s.url + "/tokenize", data=body, timeout=60)
                                                    for _ in range(n // 4)]) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    burst(20)
    after_20 = rss_kib(s.proc.pid)
    burst(80)
    after_100 = rss_kib(s.proc.pid)
    assert after_100 <= after_20 * 1.2, (after_20, after_100)
