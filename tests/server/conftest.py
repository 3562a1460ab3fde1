"""Starts real `flashneox serve` processes on loopback for the server tests."""
import os
import re
import subprocess
import threading
import time

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("FLASHNEOX_BINARY", os.path.join(ROOT, "build", "flashneox"))


class RunningServer:
    def __init__(self, *extra_args, env=None, launcher=()):
        if not os.path.exists(BINARY):
            raise RuntimeError(f"{BINARY} is missing: run `make build` first")
        # launcher: what starts the binary, e.g. mpirun for a tensor-parallel server.
        args = [*launcher, BINARY, "serve", "--port", "0", "--kv-cache-memory", "64MiB", *extra_args]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.log = []
        self.url = None
        deadline = time.time() + 60
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"serving on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                break
            if time.time() > deadline:
                break
        if self.url is None:
            self.proc.kill()
            raise RuntimeError("server did not start:\n" + "".join(self.log))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def metric(self, name, headers=None):
        text = requests.get(self.url + "/metrics", headers=headers or {}, timeout=10).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise KeyError(name)


@pytest.fixture(scope="session")
def server():
    s = RunningServer()
    yield s
    s.stop()


@pytest.fixture
def make_server():
    started = []

    def start(*args, env=None, launcher=()):
        s = RunningServer(*args, env=env, launcher=launcher)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def cli_greedy(prompt, max_new_tokens):
    """What `flashneox generate` prints for a greedy run: the reference text."""
    out = subprocess.run([BINARY, "generate", "--prompt", prompt, "--temperature", "0",
                          "--max-new-tokens", str(max_new_tokens)],
                         capture_output=True, text=True, check=True)
    return out.stdout
