"""Every route of a real server process, every error, and that it keeps serving."""
import json
import os
import time

import pytest
import requests

from conftest import ROOT, cli_greedy


def sse_events(resp):
    for line in resp.iter_lines(decode_unicode=True):
        if line and line.startswith("data:"):
            payload = line[5:].strip()
            if payload != "[DONE]":
                yield json.loads(payload)


def test_health_info_models(server):
    assert requests.get(server.url + "/health").status_code == 200
    info = requests.get(server.url + "/info").json()
    for field in ("model_id", "model_dtype", "model_device_type", "max_input_length", "max_total_tokens",
                  "max_batch_total_tokens", "max_concurrent_requests", "version"):
        assert field in info, field
    assert info["model_id"] == "neox-shakespeare"
    models = requests.get(server.url + "/v1/models").json()
    assert models["data"][0]["id"] == "neox-shakespeare"


def test_generate_greedy_details_and_headers(server):
    r = requests.post(server.url + "/generate", json={
        "inputs": "ROMEO:", "parameters": {"max_new_tokens": 10, "details": True,
                                           "decoder_input_details": True, "top_n_tokens": 2}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["generated_text"] == cli_greedy("ROMEO:", 10)
    d = body["details"]
    assert d["finish_reason"] == "length" and d["generated_tokens"] == 10
    assert len(d["tokens"]) == 10 and all(t["logprob"] <= 0 for t in d["tokens"])
    assert len(d["prefill"]) == 4 and d["prefill"][0]["logprob"] is None and d["prefill"][1]["logprob"] < 0
    assert len(d["top_tokens"]) == 10 and len(d["top_tokens"][0]) == 2
    for h in ("x-compute-time", "x-queue-time", "x-inference-time", "x-time-per-token",
              "x-prompt-tokens", "x-generated-tokens"):
        assert h in r.headers, h
    assert r.headers["x-prompt-tokens"] == "4" and r.headers["x-generated-tokens"] == "10"


def test_generate_options(server):
    r = requests.post(server.url + "/generate", json={
        "inputs": "ROMEO:", "parameters": {"max_new_tokens": 40, "return_full_text": True, "stop": ["lord"]}})
    body = r.json()
    assert body["generated_text"] == "ROMEO:\nO, my lord"
    sampled = [requests.post(server.url + "/generate", json={
        "inputs": "To be", "parameters": {"max_new_tokens": 12, "do_sample": True, "seed": 5, "top_k": 20,
                                          "temperature": 0.9, "details": True}}).json() for _ in range(2)]
    assert sampled[0]["generated_text"] == sampled[1]["generated_text"]
    assert sampled[0]["details"]["seed"] == 5
    truncated = requests.post(server.url + "/generate", json={
        "inputs": "First Citizen: before we proceed", "parameters": {"max_new_tokens": 1, "truncate": 3, "details": True}})
    assert truncated.headers["x-prompt-tokens"] == "3"


def test_generate_stream_matches_generate(server):
    with requests.post(server.url + "/generate_stream", stream=True, json={
            "inputs": "KING RICHARD III:", "parameters": {"max_new_tokens": 15}}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(r))
    assert len(events) == 15
    assert all(e["generated_text"] is None for e in events[:-1])
    final = events[-1]
    assert final["details"]["finish_reason"] == "length" and final["details"]["generated_tokens"] == 15
    assert final["generated_text"] == "".join(e["token"]["text"] for e in events)
    assert final["generated_text"] == cli_greedy("KING RICHARD III:", 15)


def test_multibyte_text_never_broken(server):
    # High-temperature sampling wanders into byte-level tokens that split
    # characters; every streamed piece must still be whole text.
    for seed in range(3):
        with requests.post(server.url + "/generate_stream", stream=True, json={
                "inputs": "日本語のテキスト 🦜", "parameters": {"max_new_tokens": 40, "do_sample": True,
                                                       "temperature": 3.0, "seed": seed}}) as r:
            raw = b"".join(r.iter_content(None))
        text = raw.decode("utf-8")  # raises on broken UTF-8
        events = [json.loads(line[5:]) for line in text.split("\n\n") if line.startswith("data:")]
        joined = "".join(e["token"]["text"] for e in events if not e["token"]["special"])
        assert joined == events[-1]["generated_text"]
    text = "héllo 🦜 日本"
    tokens = requests.post(server.url + "/tokenize", json={"inputs": text}).json()
    raw = text.encode()
    assert tokens[0]["start"] == 0 and tokens[-1]["stop"] == len(raw)
    for t in tokens:  # byte offsets widened to whole characters
        assert raw[t["start"]:t["stop"]].decode() == t["text"] and "\ufffd" not in t["text"]
    parrot = [t for t in tokens if t["text"].strip() == "🦜"]
    assert len(parrot) >= 2  # the emoji spans several byte-level tokens, each shows it whole


def test_openai_routes(server):
    r = requests.post(server.url + "/v1/completions", json={"prompt": "ROMEO:", "max_tokens": 9, "temperature": 0})
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == cli_greedy("ROMEO:", 9)
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 9, "total_tokens": 13}
    with requests.post(server.url + "/v1/completions", stream=True, json={
            "prompt": "ROMEO:", "max_tokens": 9, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}) as s:
        lines = [l for l in s.iter_lines(decode_unicode=True) if l.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(l[5:]) for l in lines[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == cli_greedy("ROMEO:", 9)
    assert chunks[-1]["usage"]["completion_tokens"] == 9
    chat = requests.post(server.url + "/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Who art thou?"}], "max_tokens": 6, "temperature": 0}).json()
    assert chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["role"] == "assistant"
    assert chat["usage"]["completion_tokens"] <= 6


def test_metrics(server):
    requests.post(server.url + "/generate", json={"inputs": "O", "parameters": {"max_new_tokens": 2}})
    text = requests.get(server.url + "/metrics").text
    for name in ("flashneox_requests_total", "flashneox_queue_size", "flashneox_batch_current_size",
                 "flashneox_time_to_first_token_seconds_bucket", "flashneox_inter_token_latency_seconds_bucket",
                 "flashneox_request_duration_seconds_count", "flashneox_generated_tokens_total",
                 "flashneox_kv_cache_blocks_used", "flashneox_kv_cache_blocks_free"):
        assert name in text, name
    assert 'flashneox_requests_total{outcome="length"}' in text


def test_prefix_caching_reuses_a_shared_prompt(make_server):
    """A chat turn after another with the same long start prefills only what is new, and says
    exactly what a server without prefix caching says."""
    with open(os.path.join(ROOT, "tests", "data", "tinyshakespeare.txt"), encoding="utf-8") as f:
        system = f.read(3000)
    cached, plain = make_server(), make_server("--no-prefix-caching")
    assert requests.get(cached.url + "/info").json()["prefix_caching"] is True
    assert requests.get(plain.url + "/info").json()["prefix_caching"] is False
    for question in ("\nROMEO:", "\nJULIET:"):
        body = {"inputs": system + question, "parameters": {"max_new_tokens": 8, "details": True,
                                                            "top_n_tokens": 2}}
        got = requests.post(cached.url + "/generate", json=body, timeout=60).json()
        want = requests.post(plain.url + "/generate", json=body, timeout=60).json()
        assert got["generated_text"] == want["generated_text"]
        for a, b in zip(got["details"]["tokens"], want["details"]["tokens"]):
            assert a["id"] == b["id"] and abs(a["logprob"] - b["logprob"]) < 1e-5
    looked_up = cached.metric("flashneox_prefix_cache_lookup_tokens_total")
    hits = cached.metric("flashneox_prefix_cache_hit_tokens_total")
    assert hits > 0.4 * looked_up  # the second prompt's whole blocks of `system`, about half of both
    assert cached.metric("flashneox_prefix_cache_hit_rate") == pytest.approx(hits / looked_up, abs=1e-6)
    assert cached.metric("flashneox_kv_cache_blocks_cached") > 0
    assert cached.metric("flashneox_kv_cache_blocks_used") == 0
    assert plain.metric("flashneox_prefix_cache_hit_tokens_total") == 0


def test_speculation_keeps_the_text_and_counts_its_guesses(make_server):
    """--speculate on the server and `speculate` per request: the same text, stream and
    non-stream, as without it; /metrics counts guesses; a request can turn it off."""
    with open(os.path.join(ROOT, "tests", "data", "tinyshakespeare.txt"), encoding="utf-8") as f:
        passage = f.read(1200)
    prompt = passage + "\n\n" + passage[:80]  # quotes itself: guesses hold
    fast, plain = make_server("--speculate", "4"), make_server()
    body = {"inputs": prompt, "parameters": {"max_new_tokens": 40, "details": True}}
    want = requests.post(plain.url + "/generate", json=body, timeout=60).json()
    got = requests.post(fast.url + "/generate", json=body, timeout=60).json()
    assert got["generated_text"] == want["generated_text"]
    assert [t["id"] for t in got["details"]["tokens"]] == [t["id"] for t in want["details"]["tokens"]]
    with requests.post(fast.url + "/generate_stream", json=body, stream=True, timeout=60) as s:
        events = list(sse_events(s))
    assert "".join(e["token"]["text"] for e in events if not e["token"]["special"]) == want["generated_text"]
    proposed = fast.metric("flashneox_speculative_proposed_tokens_total")
    accepted = fast.metric("flashneox_speculative_accepted_tokens_total")
    assert 0 < accepted <= proposed
    assert fast.metric("flashneox_speculative_acceptance_rate") == pytest.approx(accepted / proposed, abs=1e-6)
    off = {"inputs": prompt, "parameters": {"max_new_tokens": 20, "speculate": 0}}
    assert requests.post(fast.url + "/generate", json=off, timeout=60).status_code == 200
    assert fast.metric("flashneox_speculative_proposed_tokens_total") == proposed
    on = {"prompt": prompt, "max_tokens": 20, "temperature": 0, "speculate": 3}
    assert requests.post(plain.url + "/v1/completions", json=on, timeout=60).status_code == 200
    assert plain.metric("flashneox_speculative_proposed_tokens_total") > 0
    bad = requests.post(plain.url + "/generate", json={"inputs": "O", "parameters": {"speculate": 17}})
    assert bad.status_code == 422 and "speculate" in bad.json()["error"]


def test_bad_input_gets_errors_and_server_keeps_serving(server):
    def post(path, data=None, json_body=None):
        r = requests.post(server.url + path, data=data, json=json_body,
                          headers={"Content-Type": "application/json"})
        assert requests.get(server.url + "/health").status_code == 200  # still serving
        return r

    cases = [
        ("/generate", "{not json", None, 400),
        ("/generate", "[1, 2]", None, 422),
        ("/generate", None, {"inputs": 5}, 422),
        ("/generate", None, {"inputs": "x", "parameters": {"max_new_tokens": "ten"}}, 422),
        ("/generate", None, {"inputs": "x", "parameters": {"temperature": -1}}, 422),
        ("/generate", None, {"inputs": "x", "parameters": {"top_p": 1.5}}, 422),
        ("/generate", None, {"inputs": "x", "parameters": {"top_k": 0}}, 422),
        ("/generate", None, {"inputs": "x", "parameters": {"max_new_tokens": 0}}, 422),
        ("/generate", None, {"inputs": "x", "parameters": {"max_new_tokens": 100000}}, 422),
        ("/generate", None, {"inputs": "x", "parameters": {"best_of": 2}}, 422),
        ("/generate", None, {"inputs": "x", "parameters": {"adapter_id": "my-lora"}}, 422),
        ("/generate", None, {"inputs": "", "parameters": {}}, 422),
        ("/generate", None, {"inputs": "word " * 3000, "parameters": {"max_new_tokens": 1}}, 422),
        ("/generate_stream", None, {"inputs": "x", "parameters": {"repetition_penalty": 0}}, 422),
        ("/generate", b'{"inputs": "\xff\xfe"}', None, 400),
        ("/v1/completions", None, {"prompt": 3}, 422),
        ("/v1/completions", None, {"prompt": "x", "n": 2}, 422),
        ("/v1/chat/completions", None, {"messages": []}, 422),
        ("/tokenize", None, {"text": "x"}, 422),
    ]
    for path, data, body, status in cases:
        r = post(path, data, body)
        assert r.status_code == status, (path, data, body, r.status_code, r.text)
        err = r.json()
        assert "error" in err and "error_type" in err, err
    long = post("/generate", None, {"inputs": "word " * 3000, "parameters": {"max_new_tokens": 1}}).json()
    assert "tokens" in long["error"]
    assert requests.get(server.url + "/nope").status_code == 404
    ok = requests.post(server.url + "/generate", json={"inputs": "ROMEO:", "parameters": {"max_new_tokens": 3}})
    assert ok.status_code == 200 and server.alive()


def test_body_limit_and_api_key(make_server):
    s = make_server("--max-body-bytes", "2KiB", "--api-key", "sesame")
    auth = {"Authorization": "Bearer sesame"}
    assert requests.get(s.url + "/health").status_code == 200  # no key needed
    r = requests.post(s.url + "/generate", json={"inputs": "x"})
    assert r.status_code == 401 and r.json()["error_type"] == "unauthorized"
    assert requests.get(s.url + "/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = requests.post(s.url + "/generate", headers=auth, json={"inputs": "x" * 5000})
    assert r.status_code == 413
    r = requests.post(s.url + "/generate", headers=auth, json={"inputs": "ROMEO:", "parameters": {"max_new_tokens": 2}})
    assert r.status_code == 200
    assert s.metric("flashneox_kv_cache_blocks_used", auth) == 0


def test_overload_gives_429(make_server):
    s = make_server("--max-concurrent-requests", "1")
    # The held stream's line iterator is kept: a discarded one closes the
    # connection when it is collected, and the server then (rightly) cancels the
    # held request before the second one arrives.
    with requests.post(s.url + "/generate_stream", stream=True, json={
            "inputs": "ROMEO:", "parameters": {"max_new_tokens": 2000, "ignore_eos_token": True}}) as held:
        assert held.status_code == 200
        lines = held.iter_lines()
        next(lines)  # it is running, for seconds yet
        r = requests.post(s.url + "/generate", json={"inputs": "x", "parameters": {"max_new_tokens": 1}})
        assert r.status_code == 429, r.text
        assert r.json()["error_type"] == "overloaded"
    deadline = time.time() + 20
    while time.time() < deadline:
        r = requests.post(s.url + "/generate", json={"inputs": "x", "parameters": {"max_new_tokens": 1}})
        if r.status_code == 200:
            break
        time.sleep(0.2)
    assert r.status_code == 200


def test_client_disconnect_frees_blocks(server):
    idle = server.metric("flashneox_kv_cache_blocks_used")
    with requests.post(server.url + "/generate_stream", stream=True, json={
            "inputs": "ROMEO:", "parameters": {"max_new_tokens": 1500, "ignore_eos_token": True}}) as r:
        lines = r.iter_lines()
        for _ in range(10):
            next(lines)
        assert server.metric("flashneox_kv_cache_blocks_used") > idle
    # The connection is closed half way: the request is cancelled, its blocks freed.
    deadline = time.time() + 20
    while time.time() < deadline and server.metric("flashneox_kv_cache_blocks_used") != idle:
        time.sleep(0.1)
    assert server.metric("flashneox_kv_cache_blocks_used") == idle
    text = requests.get(server.url + "/metrics").text
    assert 'flashneox_requests_total{outcome="cancelled"}' in text


def test_chat_template_from_tokenizer_config(make_server, tmp_path):
    import os
    import shutil
    from conftest import ROOT
    model = tmp_path / "model"
    shutil.copytree(os.path.join(ROOT, "models", "neox-shakespeare"), model)
    template = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    (model / "tokenizer_config.json").write_text(json.dumps({"chat_template": template, "eos_token": "<|endoftext|>"}))
    s = make_server("--model", str(model))
    messages = [{"role": "user", "content": "Who art thou?"}]
    chat = requests.post(s.url + "/v1/chat/completions", json={"messages": messages, "max_tokens": 3,
                                                               "temperature": 0}).json()
    rendered = "<|im_start|>user\nWho art thou?<|im_end|>\n<|im_start|>assistant\n"
    tokens = requests.post(s.url + "/tokenize", json={"inputs": rendered}).json()
    assert chat["usage"]["prompt_tokens"] == len(tokens)
    assert tokens[0]["id"] == 50277  # <|im_start|> as one special token: the template was used
    bad = requests.post(s.url + "/v1/chat/completions", json={"messages": [{"role": 5}]})
    assert bad.status_code == 422
