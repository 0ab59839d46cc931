"""Shared fixtures: a fresh dataset root per test, a local S3 server (moto's), and synthetic SMPL-X stand-ins (the
real one is licensed; never commit a body model file): a random one for invariants (`smplx_npz`), and the training
parity pack's deterministic one (`smplx_standin`), whose numbers the pack's targets depend on."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors on a shared 2-core CPU: one torch thread is faster and immune to OpenMP stalls (10x slower
    otherwise). Module-scoped; modules opt in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def isolated_weight_caches(tmp_path, monkeypatch):
    """Hash cache and Hugging Face cache in the test's temporary folder; no checkpoint from the environment."""
    from human3r.weights import CACHE_ENV, CHECKPOINT_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "h3r-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", CHECKPOINT_ENV):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API server (moto's ThreadedMotoServer) on 127.0.0.1 with the bucket `archive`, one per session.

    Yields its URL (for ``?endpoint_override=`` or boto3's ``endpoint_url``); test credentials are set in the
    environment, and ``AWS_ENDPOINT_URL`` removed, until the session ends."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    mp = pytest.MonkeyPatch()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        mp.setenv(k, v)
    mp.delenv("AWS_ENDPOINT_URL", raising=False)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="archive")
    yield endpoint
    mp.undo()
    server.stop()


class S3Proxy:
    """An HTTP proxy in front of the S3 server: it counts every request (``requests``: (method, path) pairs) and
    answers the next `n` requests of one key with an S3 error (:meth:`fail`) instead of passing them on, as a
    throttled or failing S3 endpoint would. Point clients at ``url`` (``?endpoint_override=`` or AWS_ENDPOINT_URL).
    """

    def __init__(self, upstream: str):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import unquote, urlsplit

        self.requests: list[tuple[str, str]] = []
        self._faults: list[list] = []  # [path suffix, method, remaining, status, code]
        self._lock = threading.Lock()
        target = urlsplit(upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                import http.client

                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # pyarrow's uploads
                    body = b""
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        body += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length) if length else None
                path = unquote(urlsplit(self.path).path)
                with proxy._lock:
                    proxy.requests.append((self.command, path))
                    fault = next((f for f in proxy._faults if path.endswith(f[0]) and self.command == f[1] and f[2]),
                                 None)
                    if fault is not None:
                        fault[2] -= 1
                if fault is not None:
                    xml = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{fault[4]}</Code><Message>injected by "
                           "the test proxy</Message></Error>").encode()
                    self.send_response(fault[3])
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(xml)))
                    self.end_headers()
                    self.wfile.write(xml)
                    return
                upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("connection", "expect", "transfer-encoding")}
                upstream_conn.request(self.command, self.path, body=body, headers=headers)
                reply = upstream_conn.getresponse()
                data = reply.read()
                self.send_response(reply.status)
                for k, v in reply.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                size = reply.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(data))
                self.send_header("Content-Length", size)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream_conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-proxy", daemon=True)
        self._thread.start()

    def fail(self, key: str, n: int, *, status: int = 503, code: str = "SlowDown", method: str = "GET") -> None:
        """Answer the next `n` `method` requests of the object whose path ends with `key` with `status` / `code`."""
        with self._lock:
            self._faults.append([key, method, n, status, code])

    def count(self, method: str, path_part: str) -> int:
        """Requests so far with this method whose path contains `path_part`."""
        with self._lock:
            return sum(m == method and path_part in p for m, p in self.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def s3_proxy(s3_endpoint):
    """An :class:`S3Proxy` in front of the session's S3 server (counts requests, injects failures)."""
    proxy = S3Proxy(s3_endpoint)
    yield proxy
    proxy.close()


@pytest.fixture(autouse=True)
def short_replaced_grace(monkeypatch):
    """Commands and flows wait `REPLACED_GRACE_S` (5 s) at their end before deleting the rows of the runs they
    replaced; 0.2 s in tests. Storage tests that exercise the grace pass their own."""
    from storage import schema

    monkeypatch.setattr(schema, "REPLACED_GRACE_S", 0.2)


@pytest.fixture
def root(tmp_path):
    """A dataset root (pyarrow filesystem handle) in a fresh temporary folder."""
    from storage.fs import open_root

    return open_root(tmp_path / "dataset")


SMPLX_V, SMPLX_F, SMPLX_J = 10475, 20908, 55


def _smplx_parents() -> np.ndarray:
    """SMPL-X kinematic tree: 22 body joints, jaw and eyes, then 15 joints per hand (parents[i] < i)."""
    body = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
    face = [15, 15, 15]  # jaw, left eye, right eye hang off the head

    def hand(wrist: int, start: int) -> list[int]:
        chain = []
        for finger in range(5):
            first = start + 3 * finger
            chain += [wrist, first, first + 1]
        return chain

    return np.array(body + face + hand(20, 25) + hand(21, 40))


def write_fake_smplx(path: Path, n_shape: int = 10, n_expr: int = 10, seed: int = 0) -> Path:
    """A random model with the array names and shapes of SMPLX_NEUTRAL.npz (see docs: ecosystem §6).

    Random geometry: tests may assert invariants (shapes, head placement, frames), never anatomy.
    float32 and 10+10 shape components keep it at about 70 MB and 0.3 s.
    """
    rng = np.random.default_rng(seed)
    V, F, J = SMPLX_V, SMPLX_F, SMPLX_J
    parents = _smplx_parents()
    j_regressor = np.zeros((J, V), dtype=np.float32)
    for j in range(J):
        j_regressor[j, rng.choice(V, 20, replace=False)] = 1 / 20
    weights = rng.random((V, J)) ** 8
    weights /= weights.sum(1, keepdims=True)

    def orthonormal() -> np.ndarray:
        return np.linalg.qr(rng.standard_normal((45, 45)))[0].astype(np.float32)

    faces = np.stack([np.arange(F) % V, (np.arange(F) + 1) % V, (np.arange(F) + 2) % V], 1).astype(np.uint32)
    np.savez(
        path,
        v_template=(rng.standard_normal((V, 3)) * [0.15, 0.5, 0.1]).astype(np.float32),
        f=faces,
        shapedirs=(rng.standard_normal((V, 3, n_shape + n_expr)) * 1e-3).astype(np.float32),
        posedirs=(rng.standard_normal((V, 3, (J - 1) * 9)) * 1e-3).astype(np.float32),
        J_regressor=j_regressor,
        weights=weights.astype(np.float32),
        kintree_table=np.stack([np.where(parents < 0, 2**32 - 1, parents), np.arange(J)]).astype(np.uint32),
        hands_componentsl=orthonormal(),
        hands_componentsr=orthonormal(),
        hands_meanl=(rng.standard_normal(45) * 0.1).astype(np.float32),
        hands_meanr=(rng.standard_normal(45) * 0.1).astype(np.float32),
        lmk_faces_idx=rng.integers(0, F, 51),
        lmk_bary_coords=rng.dirichlet([1, 1, 1], 51).astype(np.float32),
        dynamic_lmk_faces_idx=rng.integers(0, F, (79, 17)),
        dynamic_lmk_bary_coords=rng.dirichlet([1, 1, 1], (79, 17)).astype(np.float32),
    )
    return path


@pytest.fixture(scope="session")
def smplx_npz(tmp_path_factory) -> Path:
    """Path of a synthetic SMPLX_NEUTRAL.npz, generated once per session under a temporary folder."""
    folder = tmp_path_factory.mktemp("smplx")
    return write_fake_smplx(folder / "SMPLX_NEUTRAL.npz")


TRAIN_PARITY = Path(__file__).parent / "fixtures" / "train_parity"


@pytest.fixture(scope="session")
def smplx_standin() -> Path:
    """The training parity pack's SMPL-X stand-in (tests/fixtures/train_parity/make_smplx_standin.py: a designed
    body with SMPL-X's layout; `write_fake_smplx` is random and cannot reproduce the pack). Generated once per
    machine (~28 s of one core) into the folder `human3r parity train` uses (`$HUMAN3R_CACHE_DIR`, default
    ~/.cache/human3r), under the hash of the pack's manifest (every array's sha256, which the generator checks its
    output against), written atomically; every later session reuses it, `-p no:cacheprovider` ones included."""
    from tasks.training.pack import pack_body_model

    return pack_body_model(TRAIN_PARITY)


@pytest.fixture(scope="session")
def train_bodies(smplx_standin):
    """The two SMPL-X layers of a training step (11-beta ground truth, 10-beta predictions) on the pack's stand-in
    (the harness's per-process copy, so `human3r parity train` run in-process reuses it)."""
    from tasks.training.pack import load_bodies

    return load_bodies(smplx_standin)


@pytest.fixture(scope="session")
def body_model(smplx_npz):
    """The BodyModel built on the synthetic stand-in (loaded once per session)."""
    from human3r.body import BodyModel

    return BodyModel(smplx_npz)


@pytest.fixture(scope="session")
def human3r_cli():
    """`human3r_cli(*args, code=0)`: run the `human3r` command in-process (click's CliRunner); stdout and stderr
    are kept apart. The exit code is checked unless `code=None`."""
    from click.testing import CliRunner

    from tasks.cli.main import cli

    def run(*args, code: int | None = 0, env: dict | None = None):
        result = CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, (result.exit_code, result.stderr[-3000:], result.stdout[-2000:])
        return result

    return run
