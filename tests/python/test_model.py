"""The Python API end to end: generation against the CLI and the fixtures, logits and hidden
states against transformers' references, perplexity, tokenizer, errors, threads, Ctrl-C."""
import json
import os
import subprocess
import signal
import threading
import _thread
import time

import numpy as np
import pytest

import flashneox
from conftest import BINARY, ROOT, SHAKESPEARE, fixture, read_safetensors


def test_greedy_generation_equals_the_cli(shakespeare):
    cli = subprocess.run([BINARY, "generate", "--model", SHAKESPEARE, "--prompt", "ROMEO:", "--max-new-tokens", "40"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    g = shakespeare.generate("ROMEO:", max_new_tokens=40)
    assert g.text == cli.stdout and g.finish_reason == "length" and len(g.token_ids) == 40
    assert g.prompt_tokens == len(shakespeare.tokenizer.encode("ROMEO:")) and g.seed is None


def test_batched_generation_equals_the_references(shakespeare):
    with open(os.path.join(SHAKESPEARE, "reference.json")) as f:
        reference = json.load(f)
    cases = reference["greedy"]
    prompts = [case["prompt"] for case in cases]
    results = shakespeare.generate(prompts, max_new_tokens=48, ignore_eos=True)
    for case, got in zip(cases, results):
        assert got.prompt_tokens == len(case["prompt_ids"])
        assert got.token_ids == case["greedy_48_ids"] and got.text == case["greedy_48_text"]


def test_stream_yields_what_generate_returns(shakespeare):
    tokens = list(shakespeare.stream("JULIET:", max_new_tokens=25))
    assert all(isinstance(t, flashneox.Token) for t in tokens) and len(tokens) == 25
    assert "".join(t.text for t in tokens) == shakespeare.generate("JULIET:", max_new_tokens=25).text


def test_leaving_a_stream_early_frees_its_blocks(shakespeare):
    for i, _ in enumerate(shakespeare.stream("ROMEO:", max_new_tokens=500, ignore_eos=True)):
        if i == 5:
            assert shakespeare.stats["kv_blocks_used"] > 0
            break
    assert shakespeare.stats["kv_blocks_used"] == 0 and shakespeare.stats["running"] == 0


def test_sampling_options_and_seed(shakespeare):
    a = shakespeare.generate(["ROMEO:", "JULIET:"], max_new_tokens=12, temperature=0.8, top_k=40, top_p=0.95,
                             repetition_penalty=1.1, frequency_penalty=0.2, presence_penalty=0.1, seed=7)
    b = shakespeare.generate(["ROMEO:", "JULIET:"], max_new_tokens=12, temperature=0.8, top_k=40, top_p=0.95,
                             repetition_penalty=1.1, frequency_penalty=0.2, presence_penalty=0.1, seed=7)
    assert [g.text for g in a] == [g.text for g in b] and a[0].seed == 7
    with open(os.path.join(SHAKESPEARE, "reference.json")) as f:
        greedy = json.load(f)["greedy"][0]  # ROMEO:'s continuation has a blank line after its first speech
    assert greedy["prompt"] == "ROMEO:"
    stopped = shakespeare.generate("ROMEO:", max_new_tokens=48, stop="\n\n")
    assert stopped.finish_reason == "stop_sequence"
    assert stopped.text == greedy["greedy_48_text"][:greedy["greedy_48_text"].index("\n\n") + 2]


@pytest.mark.parametrize("name", ["neox-parallel", "neox-sequential", "neox-tied-bf16", "neox-fp16-sharded"])
def test_logits_equal_the_fixture_references(name):
    model = flashneox.Model(fixture(name), dtype="f32")
    with open(fixture(name, "reference.json")) as f:
        prompts = json.load(f)["prompts"]
    want = read_safetensors(fixture(name, "reference.safetensors"))
    got = model.logits(prompts, hidden_states="final")
    for i, (logits, hidden) in enumerate(got):
        assert logits.dtype == np.float32 and logits.shape == want[f"logits.{i}"].shape
        assert np.abs(logits - want[f"logits.{i}"]).max() < 1e-3
        assert np.abs(hidden - want[f"hidden.{i}"]).max() < 1e-3
    single = model.logits(np.array(prompts[1], dtype=np.int64))
    assert isinstance(single, np.ndarray) and np.array_equal(single, got[1][0])


@pytest.mark.parametrize("name", ["neox-parallel", "neox-sequential"])
def test_every_layers_hidden_states_equal_transformers(name):
    model = flashneox.Model(fixture(name))
    want = read_safetensors(fixture(name, "hidden_states.safetensors"))
    count = len([k for k in want if k.startswith("ids.")])
    sequences = [want[f"ids.{i}"].tolist() for i in range(count)]
    got = model.logits(sequences, hidden_states="all")
    for i, (logits, states) in enumerate(got):
        assert states.shape == want[f"hidden_states.{i}"].shape  # [num_layers + 1, len, hidden]
        assert np.abs(states - want[f"hidden_states.{i}"]).max() < 1e-4


def test_logits_with_an_adapter_equal_peft():
    model = flashneox.Model(fixture("neox-parallel"))
    adapter = fixture("neox-parallel", "adapters", "lora-a")
    with open(fixture("neox-parallel", "reference.json")) as f:
        prompts = json.load(f)["prompts"]
    want = read_safetensors(os.path.join(adapter, "reference.safetensors"))
    for i, logits in enumerate(model.logits(prompts, adapter=adapter)):
        assert np.abs(logits - want[f"logits.{i}"]).max() < 1e-3
    base = model.logits(prompts[1])
    assert np.abs(base - want["logits.1"]).max() > 0.1  # the adapter did something


def test_perplexity_equals_the_cli(shakespeare, tmp_path):
    # The CLI's perplexity is checked against the reference NLL of the whole validation split
    # (parity tests); here the same windows through Python, on a slice of it.
    with open(os.path.join(ROOT, "tests", "data", "tinyshakespeare.txt")) as f:
        text = f.read()[1_000_000:1_008_000]
    path = tmp_path / "slice.txt"
    path.write_text(text)
    cli = subprocess.run([BINARY, "perplexity", "--model", SHAKESPEARE, "--file", str(path), "--window", "256",
                          "--stride", "128"], capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr
    nll = float(cli.stdout.split("nll ")[1].split()[0])
    scored = int(cli.stdout.split("scored ")[1].split()[0])
    result = shakespeare.perplexity(text, window=256, stride=128)
    assert abs(result.nll - nll) < 1e-5 and result.scored_tokens == scored
    assert result.window == 256 and result.stride == 128 and abs(result.perplexity - np.exp(result.nll)) < 1e-9
    tokens = shakespeare.tokenizer.encode(text)
    assert shakespeare.perplexity(tokens, window=256, stride=128) == result
    tail = shakespeare.perplexity(tokens[:300], window=256, partial_window=True)
    assert tail.scored_tokens == 255 + 43  # the second window cannot see token 255, so 256 goes unscored


def test_tokenizer_round_trips(shakespeare):
    tok = shakespeare.tokenizer
    ids = tok.encode("Hello, world! héllo 🙂")
    assert tok.decode(ids) == "Hello, world! héllo 🙂"
    assert len(tok) == tok.vocab_size and tok.token_id("<|endoftext|>") == 0
    other = flashneox.Tokenizer.from_file(os.path.join(SHAKESPEARE, "tokenizer.json"))
    assert other.encode("ROMEO:") == tok.encode("ROMEO:")


def test_errors_become_exceptions_with_the_engines_messages(shakespeare, tmp_path):
    with pytest.raises(flashneox.Error, match="no such model folder"):
        flashneox.Model(str(tmp_path / "nowhere"))
    with pytest.raises(flashneox.Error, match="dtype must be f32, f16, bf16, int8, q4 or q4-g128"):
        flashneox.Model(SHAKESPEARE, dtype="f8")
    with pytest.raises(flashneox.Error, match="config.json"):
        flashneox.Model(str(tmp_path))
    with pytest.raises(flashneox.Error, match="top_p"):
        shakespeare.generate("x", top_p=1.5)
    with pytest.raises(flashneox.Error, match="max_new_tokens"):
        shakespeare.generate("x", max_new_tokens=0)
    with pytest.raises(flashneox.Error, match="must be <= 2048"):
        shakespeare.generate("x", max_new_tokens=5000)
    with pytest.raises(flashneox.Error, match="encodes to no tokens"):
        shakespeare.generate("")
    with pytest.raises(flashneox.Error, match="outside the vocabulary"):
        shakespeare.logits([[1, 2, 60000]])
    with pytest.raises(flashneox.Error, match="no such adapter folder"):
        shakespeare.generate("x", adapter=str(tmp_path / "missing-adapter"))
    with pytest.raises(flashneox.Error, match="leaves nothing to score"):
        shakespeare.perplexity("To be", window=64)
    with pytest.raises(ValueError):
        shakespeare.logits([1, 2], hidden_states="some")
    no_tokenizer = flashneox.Model(fixture("neox-parallel"))
    assert no_tokenizer.tokenizer is None
    with pytest.raises(flashneox.Error, match="tokenizer.json"):
        no_tokenizer.generate("x")
    assert shakespeare.generate("ROMEO:", max_new_tokens=3).token_ids  # still serving
    assert shakespeare.stats["kv_blocks_used"] == 0


def test_two_threads_share_one_model(shakespeare):
    prompts = ["ROMEO:", "JULIET:", "KING HENRY:", "First Citizen:"]
    alone = [g.text for g in shakespeare.generate(prompts, max_new_tokens=30)]
    logits_alone = shakespeare.logits(shakespeare.tokenizer.encode("To be, or not to be"))
    results, errors = {}, []

    def work(k):
        try:
            for _ in range(3):
                results[("gen", k)] = [g.text for g in shakespeare.generate(prompts[k::2], max_new_tokens=30)]
                results[("logits", k)] = shakespeare.logits(shakespeare.tokenizer.encode("To be, or not to be"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    assert results[("gen", 0)] == alone[0::2] and results[("gen", 1)] == alone[1::2]
    for k in range(2):
        assert np.abs(results[("logits", k)] - logits_alone).max() < 1e-4
    assert shakespeare.stats["kv_blocks_used"] == 0


def test_ctrl_c_cancels_a_long_generation(shakespeare):
    # A process started in the background by a non-interactive shell inherits
    # SIGINT ignored, and then interrupt_main() does nothing: Python's own
    # handler, as an interactive session has it, for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    start = time.time()
    try:
        with pytest.raises(KeyboardInterrupt):
            shakespeare.generate(["ROMEO:", "JULIET:"], max_new_tokens=1900, ignore_eos=True)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.time() - start < 10
    assert shakespeare.stats["kv_blocks_used"] == 0 and shakespeare.stats["running"] == 0
    assert shakespeare.generate("ROMEO:", max_new_tokens=2).token_ids


def test_models_by_hub_id_from_the_local_cache(tmp_path, monkeypatch):
    repo = tmp_path / "hub" / "models--EleutherAI--pythia-tiny"
    commit = "a" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    for name in os.listdir(fixture("neox-parallel")):
        if name != "adapters":
            os.symlink(fixture("neox-parallel", name), repo / "snapshots" / commit / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "step3000").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    model = flashneox.Model("EleutherAI/pythia-tiny@step3000")
    assert model.directory.endswith(commit)
    assert flashneox.Model(f"EleutherAI/pythia-tiny@{commit}").directory == model.directory
    with pytest.raises(flashneox.Error, match="step3000"):  # names the revisions it has
        flashneox.Model("EleutherAI/pythia-tiny@step9")


def test_python_dash_m_flashneox_serves(tmp_path):
    import re
    import signal
    import sys
    import urllib.request
    env = {**os.environ, "PYTHONPATH": os.environ.get("FLASHNEOX_PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "flashneox", "serve", "--model", SHAKESPEARE, "--port", "0",
                             "--kv-cache-memory", "32MiB"], stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        for line in proc.stderr:
            m = re.search(r"serving on (http://\S+)", line)
            if m:
                url = m.group(1)
                break
        assert url, "python -m flashneox serve did not start"
        body = json.dumps({"inputs": "ROMEO:", "parameters": {"max_new_tokens": 5}}).encode()
        req = urllib.request.Request(url + "/generate", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            assert "generated_text" in json.loads(r.read())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    help_text = subprocess.run([sys.executable, "-m", "flashneox", "generate", "--help"], capture_output=True,
                               text=True, env=env, timeout=60)
    assert help_text.returncode == 0 and "--max-new-tokens" in help_text.stdout
