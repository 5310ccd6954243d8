"""Shared pytest fixtures: a hermetic environment and a real S3 API on 127.0.0.1.

Environment (set once in ``pytest_configure``, before any test module is
imported, and restored in ``pytest_unconfigure``):

* ``DAGSTER_HOME`` is a fresh temporary folder whose ``dagster.yaml`` only turns
  telemetry off; ``DAGSTER_DISABLE_TELEMETRY``, ``DO_NOT_TRACK`` and
  ``DBT_SEND_ANONYMOUS_USAGE_STATS=false`` silence phone-home code.
* Every inherited ``AWS_*`` and ``LAKEHOUSE_*`` variable is removed, so a
  developer's profile, real credentials, endpoint or lake URI can never leak in.
  Dummy credentials (``testing``/``testing``), region ``us-east-1``, shared
  config/credential files that do not exist and a disabled EC2 metadata lookup
  take their place. ``AWS_ENDPOINT_URL`` is deliberately *not* set globally:
  only tests that ask for ``s3_lake_uri`` get it (via ``monkeypatch``).
* Loopback addresses are added to ``NO_PROXY`` so a corporate proxy never sees
  test traffic.

Fixtures:

``s3_server``        (session) endpoint URL of a real ``moto.server`` subprocess.
``s3_client``        (session) explicit boto3 S3 client for that endpoint.
``s3_lake_uri``      (function) ``s3://<fresh bucket>/`` with ``AWS_ENDPOINT_URL``
                     pointing at the server, so ``boto3.client("s3")`` reaches it.
``lake_uri``         (function, params ``local``/``s3``) a lake root on either store.
``s3_auth_server``   (session) a second moto server that *enforces* IAM
                     authentication; yields ``S3AuthServer`` with a bucket and a
                     valid access key, for credential-failure tests.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError

MOTO_START_TIMEOUT_S = 30.0
LOOPBACK = "127.0.0.1"

_ENV_PREFIXES_TO_CLEAR = ("AWS_", "LAKEHOUSE_")


# --------------------------------------------------------------------------- environment


def pytest_configure(config: pytest.Config) -> None:
    """Make the whole session hermetic (see the module docstring)."""
    patch = pytest.MonkeyPatch()
    config._lakehouse_env_patch = patch  # type: ignore[attr-defined]

    dagster_home = Path(tempfile.mkdtemp(prefix="lakehouse-tests-dagster-home-"))
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    config._lakehouse_dagster_home = dagster_home  # type: ignore[attr-defined]

    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES_TO_CLEAR):
            patch.delenv(name)

    no_aws_files = dagster_home / "no-such-aws-dir"
    patch.setenv("DAGSTER_HOME", str(dagster_home))
    patch.setenv("DAGSTER_DISABLE_TELEMETRY", "1")
    patch.setenv("DO_NOT_TRACK", "1")
    patch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    patch.setenv("AWS_CONFIG_FILE", str(no_aws_files / "config"))
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(no_aws_files / "credentials"))
    patch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    for name in ("NO_PROXY", "no_proxy"):
        current = [part for part in os.environ.get(name, "").split(",") if part]
        wanted = [host for host in (LOOPBACK, "localhost", "::1") if host not in current]
        patch.setenv(name, ",".join(current + wanted))


def pytest_unconfigure(config: pytest.Config) -> None:
    patch = getattr(config, "_lakehouse_env_patch", None)
    if patch is not None:
        patch.undo()
    home = getattr(config, "_lakehouse_dagster_home", None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------------------- moto server


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    """True once the server returns any HTTP response (no proxy, loopback only)."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=1)
    try:
        connection.request("GET", "/moto-api/reset-auth")  # cheap; GET changes nothing
        connection.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        connection.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server and anything it spawned (its own process group)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)
    else:  # the leader is gone; make sure no child outlives it
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _start_moto_server(log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``python -m moto.server`` on a free loopback port; return (process, endpoint)."""
    last_log = ""
    for _attempt in range(3):  # the free port may be taken between probe and bind
        port = free_loopback_port()
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group, so _stop reaches children
                env=os.environ.copy(),
            )
        deadline = time.monotonic() + MOTO_START_TIMEOUT_S
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(port):
                return process, f"http://{LOOPBACK}:{port}"
            time.sleep(0.05)
        _stop(process)
        last_log = log_path.read_text(errors="replace")[-4000:]
    raise RuntimeError(f"moto S3 server did not start; log {log_path}:\n{last_log}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Endpoint URL (``http://127.0.0.1:<port>``) of a real moto S3 server subprocess."""
    log_path = tmp_path_factory.mktemp("moto") / "moto-server.log"
    process, endpoint = _start_moto_server(log_path)
    try:
        yield endpoint
    finally:
        _stop(process)


def make_s3_client(endpoint: str, **config: Any) -> Any:
    """A boto3 S3 client on ``endpoint`` with dummy credentials and short timeouts."""
    import boto3
    from botocore.config import Config

    settings: dict[str, Any] = {
        "connect_timeout": 5,
        "read_timeout": 30,
        "retries": {"mode": "standard", "max_attempts": 3},
    }
    settings.update(config)
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    credentials.update(settings.pop("credentials", {}))
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(**settings),
        **credentials,
    )


@pytest.fixture(scope="session")
def s3_client(s3_server: str) -> Any:
    """An explicit boto3 S3 client for the moto server (independent of the environment)."""
    return make_s3_client(s3_server)


def _empty_and_delete_bucket(client: Any, bucket: str) -> None:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3_lake_uri(s3_server: str, s3_client: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``s3://<fresh bucket>/`` on the moto server; ``AWS_ENDPOINT_URL`` points there."""
    bucket = f"lake-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    yield f"s3://{bucket}/"
    try:
        _empty_and_delete_bucket(s3_client, bucket)
    except (BotoCoreError, ClientError) as exc:  # best effort; the server dies with the session
        warnings.warn(f"could not remove test bucket {bucket}: {exc}", stacklevel=1)


@pytest.fixture(params=["local", "s3"])
def lake_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A lake root on each store: ``<tmp>/lake`` (``[local]``) or ``s3://bucket/`` (``[s3]``).

    The S3 server is started only when an ``[s3]`` case runs.
    """
    if request.param == "local":
        return str(tmp_path / "lake")
    return request.getfixturevalue("s3_lake_uri")


# --------------------------------------------------------------------------- auth-enforcing S3


@dataclass(frozen=True)
class S3AuthServer:
    """A moto server that checks signatures and IAM permissions."""

    endpoint: str
    bucket: str
    access_key_id: str  # valid, with s3:* on every bucket
    secret_access_key: str


@pytest.fixture(scope="session")
def s3_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3AuthServer]:
    """A separate moto server with IAM authentication switched on.

    Setup runs unauthenticated (moto's default): an IAM user with an ``s3:*``
    policy and an access key, and a bucket. Then ``/moto-api/reset-auth 0``
    makes every later request need a valid key and signature. The shared
    ``s3_server`` stays unauthenticated so the dummy ``testing`` keys work there.
    """
    import boto3

    log_path = tmp_path_factory.mktemp("moto-auth") / "moto-server.log"
    process, endpoint = _start_moto_server(log_path)
    try:
        iam = boto3.client(
            "iam",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        iam.create_user(UserName="lake-tester")
        iam.put_user_policy(
            UserName="lake-tester",
            PolicyName="s3-all",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
                }
            ),
        )
        key = iam.create_access_key(UserName="lake-tester")["AccessKey"]
        bucket = f"auth-lake-{uuid.uuid4().hex[:12]}"
        make_s3_client(endpoint).create_bucket(Bucket=bucket)

        port = int(endpoint.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
        try:
            connection.request("POST", "/moto-api/reset-auth", body=b"0")
            response = connection.getresponse()
            response.read()
            assert response.status == 200, f"could not enable moto auth: {response.status}"
        finally:
            connection.close()

        yield S3AuthServer(
            endpoint=endpoint,
            bucket=bucket,
            access_key_id=key["AccessKeyId"],
            secret_access_key=key["SecretAccessKey"],
        )
    finally:
        _stop(process)
