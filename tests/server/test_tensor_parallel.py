"""A server whose model is split over two MPI ranks (`mpirun -np 2 flashneox
serve`, one thread each): the text of one process, streamed or not, and with a
LoRA adapter loaded at run time; and a rank killed mid-stream ends the whole job
within seconds, with a non-zero exit code and mpirun naming the rank."""
import json
import os
import signal
import subprocess
import time

import requests

from conftest import RunningServer, cli_greedy

MPIRUN = ("mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2")


def rank_pid(server, rank):
    """The process of one rank: a child of mpirun whose environment names it."""
    kids = subprocess.run(["pgrep", "-P", str(server.proc.pid)], capture_output=True, text=True).stdout.split()
    for pid in kids:
        with open(f"/proc/{pid}/environ", "rb") as f:
            if f"OMPI_COMM_WORLD_RANK={rank}".encode() in f.read().split(b"\0"):
                return int(pid)
    raise AssertionError(f"no rank {rank} among mpirun's children {kids}")


def test_two_ranks_serve_the_text_of_one(make_server, tmp_path):
    s = make_server("--threads", "1", "--adapter-root", str(tmp_path), launcher=MPIRUN)
    want = cli_greedy("ROMEO:", 30)
    r = requests.post(s.url + "/generate", json={"inputs": "ROMEO:", "parameters": {"max_new_tokens": 30}}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["generated_text"] == want
    text = ""
    with requests.post(s.url + "/generate_stream", stream=True, timeout=60,
                       json={"inputs": "ROMEO:", "parameters": {"max_new_tokens": 30}}) as stream:
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                event = json.loads(line[5:])
                text += event["token"]["text"]
    assert text == want
    # A LoRA adapter loaded at run time: each rank takes its cut; the text of one process.
    from test_adapters import cli_greedy as cli_greedy_with, make_adapter
    adapter = make_adapter(str(tmp_path / "a"), seed=1)
    r = requests.post(s.url + "/generate", timeout=60, json={
        "inputs": "ROMEO:", "parameters": {"max_new_tokens": 12, "adapter_id": "a", "adapter_source": "local"}})
    assert r.status_code == 200, r.text
    with_adapter = r.json()["generated_text"]
    assert with_adapter == cli_greedy_with("ROMEO:", 12, adapter) and with_adapter != want[:len(with_adapter)]
    r = requests.post(s.url + "/generate", json={"inputs": "ROMEO:", "parameters": {"max_new_tokens": 30}}, timeout=60)
    assert r.json()["generated_text"] == want


def test_a_killed_rank_ends_the_job(make_server):
    s = make_server("--threads", "1", launcher=MPIRUN)
    start = None
    with requests.post(s.url + "/generate_stream", stream=True, timeout=60, json={
            "inputs": "ROMEO:", "parameters": {"max_new_tokens": 1500, "ignore_eos_token": True}}) as stream:
        lines = stream.iter_lines()
        for _ in range(6):
            next(lines)
        os.kill(rank_pid(s, 1), signal.SIGKILL)
        start = time.time()
        try:
            for _ in lines:
                pass
        except requests.RequestException:
            pass  # the stream breaks off: the process serving it is gone
    code = s.proc.wait(timeout=30)
    assert time.time() - start < 15
    assert code != 0
    log = "".join(s.log)
    deadline = time.time() + 5
    while "rank 1" not in log and time.time() < deadline:
        time.sleep(0.1)
        log = "".join(s.log)
    assert "rank 1" in log, log


def test_sigterm_to_rank_zero_drains_the_job(make_server):
    # mpirun ends a job at once on its own signals; rank 0 drains first, then
    # releases the other ranks (which ignore the signals mpirun passes on).
    s = make_server("--threads", "1", launcher=MPIRUN)
    result = {}

    def long_request():
        result["r"] = requests.post(s.url + "/generate", timeout=60, json={
            "inputs": "ROMEO:", "parameters": {"max_new_tokens": 300, "ignore_eos_token": True}})

    import threading
    t = threading.Thread(target=long_request)
    t.start()
    time.sleep(0.5)
    os.kill(rank_pid(s, 0), signal.SIGTERM)
    t.join(timeout=60)
    assert result["r"].status_code == 200
    assert result["r"].json()["generated_text"]
    assert s.proc.wait(timeout=30) == 0
