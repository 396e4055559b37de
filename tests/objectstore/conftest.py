"""A loopback S3: moto's server mode on 127.0.0.1 (port 0), reached by s3fs/botocore through AWS_ENDPOINT_URL.

Fake credentials only, and botocore is pointed at the loopback endpoint, so nothing ever reaches AWS.
moto's threaded server checks a condition (If-None-Match / If-Match) and then writes, with no lock between:
two conditional PUTs racing on one key could both pass, which real S3 never allows (conditional writes are
atomic per key). The app is wrapped to serve one request at a time, as strict as S3 is here.
"""

from __future__ import annotations

import threading
from typing import Iterator

import pytest


class _OneRequestAtATime:
    """WSGI middleware: requests reach moto one by one, so its check-then-write is atomic like S3's."""

    def __init__(self, app):
        self.app, self.lock = app, threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


@pytest.fixture()
def s3(monkeypatch) -> Iterator[str]:
    """A loopback S3 with a fresh bucket; yields its root, ``s3://silverset-<hex>``.

    moto keeps its buckets per process, not per server: a new bucket per test keeps tests apart.
    """
    import uuid

    import boto3
    import fsspec
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = _OneRequestAtATime(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    bucket = f"silverset-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    fsspec.config.conf.pop("s3", None)
    fsspec.filesystem("s3").clear_instance_cache()  # instances made for an earlier server must not be reused
    try:
        yield f"s3://{bucket}"
    finally:
        fsspec.filesystem("s3").clear_instance_cache()
        server.shutdown()
        server.server_close()
