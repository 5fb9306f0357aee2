"""``--serve CMD``: start an OpenAI-compatible server, wait until it is healthy, always stop it.

The command is a template with ``{model}`` and ``{port}`` (a free port is chosen).  The server runs
in its own process group so that stopping it also stops its workers; it is stopped on normal
exit, on errors, on Ctrl-C and on SIGTERM.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base_url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll until ``/health`` (vLLM, SGLang, transformers serve) or ``{base_url}/models`` answers 200;
    fail early if the server process died."""
    root = base_url.rstrip("/").removesuffix("/v1")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before becoming healthy")
        for url in (f"{root}/health", f"{base_url}/models"):
            try:
                if httpx.get(url, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    raise TimeoutError(f"server at {base_url} not healthy after {timeout:.0f} s")


class ServedModel:
    """Context manager: ``with ServedModel("vllm serve {model} --port {port}", model) as s: s.base_url``."""

    def __init__(self, command: str, model: str, timeout: float = 600.0, port: int | None = None):
        self.port = port or free_port()
        self.argv = shlex.split(command.format(model=model, port=self.port))
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="tpt-serve-", suffix=".log", delete=False)
        self._old_sigterm = None

    def __enter__(self) -> "ServedModel":
        print(f"tpt augment: starting server: {shlex.join(self.argv)} (log: {self.log.name})", file=sys.stderr)
        self.process = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        # SIGTERM becomes an exception so __exit__ runs and the server is stopped.
        try:
            self._old_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        except ValueError:  # not the main thread: the caller owns signal handling
            self._old_sigterm = None
        try:
            wait_healthy(self.base_url, self.timeout, self.process)
        except BaseException as exc:
            self.stop()
            raise RuntimeError(f"--serve: {exc}; see {self.log.name}") from None
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
