"""``--serve CMD``: start an OpenAI-compatible server, wait until it is healthy, always stop it.

The command is a template with ``{model}`` and ``{port}`` (a free port is chosen).  ``--serve vllm``
is tpt's own vLLM command (``tpt.vllm_launch.serve_command``: CPU-safe settings on a CPU).  The
server runs in its own process group so that stopping it also stops its workers; it is stopped on
normal exit, on errors, on Ctrl-C and on SIGTERM.  Its output goes to a log file whose last lines
tpt shows when the server dies.
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
from pathlib import Path

import httpx

PRESETS = ("vllm",)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expand_preset(command: str, max_model_len: int | None = None) -> str:
    """``vllm`` (optionally followed by extra flags) -> tpt's vLLM command; anything else as it is."""
    name, _, extra = command.strip().partition(" ")
    if name != "vllm" or extra.startswith("serve"):  # `vllm serve ...` is a user's own command
        return command
    from tpt.vllm_launch import serve_command

    return serve_command(max_model_len=max_model_len, extra=extra.strip())


def wait_healthy(base_url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll until ``/health`` (vLLM, SGLang, transformers serve) or ``{base_url}/models`` answers 200;
    fail early if the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before becoming healthy")
        if answers(base_url):
            return
        time.sleep(0.5)
    raise TimeoutError(f"server at {base_url} not healthy after {timeout:.0f} s")


def answers(base_url: str, timeout: float = 5.0) -> bool:
    root = base_url.rstrip("/").removesuffix("/v1")
    for url in (f"{root}/health", f"{base_url.rstrip('/')}/models"):
        try:
            if httpx.get(url, timeout=timeout).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
    return False


def log_tail(path: str | Path, lines: int = 20) -> str:
    """The last lines of a server log (what a user needs to see when the server died)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64_000))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ServedModel:
    """Context manager: ``with ServedModel("vllm serve {model} --port {port}", model) as s: s.base_url``."""

    def __init__(
        self,
        command: str,
        model: str,
        timeout: float = 600.0,
        port: int | None = None,
        env: dict | None = None,
        log_dir: str | Path | None = None,
    ):
        self.port = port or free_port()
        self.argv = shlex.split(command.format(model=model, port=self.port))
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.timeout = timeout
        self.env = env
        self.process: subprocess.Popen | None = None
        if log_dir is not None:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.log = tempfile.NamedTemporaryFile(
            prefix="tpt-serve-", suffix=".log", delete=False, dir=str(log_dir) if log_dir else None
        )
        self._old_sigterm = None

    def __enter__(self) -> ServedModel:
        print(f"tpt augment: starting server: {shlex.join(self.argv)} (log: {self.log.name})", file=sys.stderr)
        env = {**os.environ, **self.env} if self.env else None
        self.process = subprocess.Popen(
            self.argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        # SIGTERM becomes an exception so __exit__ runs and the server is stopped.
        try:
            self._old_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        except ValueError:  # not the main thread: the caller owns signal handling
            self._old_sigterm = None
        try:
            wait_healthy(self.base_url, self.timeout, self.process)
        except BaseException as exc:
            self.stop()
            raise RuntimeError(
                f"--serve: {exc}; see {self.log.name}; its last lines:\n{log_tail(self.log.name)}"
            ) from None
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def death_report(self) -> str:
        """What to tell the user about a server that stopped answering."""
        state = (
            f"exited with code {self.process.returncode}"
            if self.process is not None and not self.alive()
            else "is running but does not answer"
        )
        return f"the server at {self.base_url} {state}; last lines of {self.log.name}:\n{log_tail(self.log.name)}"

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
