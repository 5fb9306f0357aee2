"""Fixtures for the scale-out tests: a real local Ray on 127.0.0.1, small corpora, a stub server.

Ray is slow to start on a busy 2-core machine, so one cluster serves the whole session and is
always shut down (``ray.shutdown`` stops the processes ``ray.init`` started).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# A stand-in for `vllm serve` in the --serve-replicas tests: records the CUDA_VISIBLE_DEVICES it got
# and answers GET /v1/models (what ServedModel's health check polls) with 200.
STUB_SERVER = """
import http.server, os, pathlib, sys
port, root = int(sys.argv[1]), pathlib.Path(sys.argv[2])
(root / f"gpus-{port}").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **kw)
http.server.HTTPServer(("127.0.0.1", port), handler).serve_forever()
"""


@pytest.fixture(scope="session")
def ray_cluster():
    """Address of a local Ray (2 CPUs, no dashboard) that a `tpt augment --ray-address` can join."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, include_dashboard=False, namespace="tpt-augment", log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture
def corpus(tmp_path):
    """``corpus(n)``: a JSONL file of n small documents with ids doc-0 .. doc-{n-1}."""

    def write(n: int) -> Path:
        path = tmp_path / f"corpus-{n}.jsonl"
        with open(path, "w") as fh:
            for i in range(n):
                fh.write(
                    json.dumps({"id": f"doc-{i}", "text": f"Document {i} explains primes and derivatives briefly."})
                    + "\n"
                )
        return path

    return write


@pytest.fixture
def stub_server_script(tmp_path) -> Path:
    root = tmp_path / "stub-root"
    (root / "v1").mkdir(parents=True)
    (root / "v1" / "models").write_text('{"data": []}')
    script = tmp_path / "stub_server.py"
    script.write_text(STUB_SERVER)
    return script
