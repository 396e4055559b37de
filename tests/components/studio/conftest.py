"""Studio fixtures: a small clustered corpus with known truth, written as real workdir tables, and the studio's
database on both backends: every test that takes ``studio`` (or ``db_url``) runs once on a SQLite file and once on
a database of a throwaway PostgreSQL server (postgres_server.py) started once per session.

Without PostgreSQL installed (``make postgres``) or without psycopg, the PostgreSQL half is skipped with the
reason; SILVERSET_REQUIRE_POSTGRES=1 turns that skip into a failure (for CI, where it must not go unnoticed).
"""

from __future__ import annotations

import hashlib
import io
import os
import re

import numpy as np
import pyarrow as pa
import pytest

from silverset.components.common import schemas, tables
from silverset.components.studio.catalog import load_workdir
from silverset.components.studio.service import Studio
from silverset.components.studio.simulate import clustered_corpus

from .postgres_server import PostgresServer, find_binaries

N_VIDEOS = 240
BACKENDS = ("sqlite", "postgresql")


def hashing_text_encoder(texts: list[str]) -> np.ndarray:
    """Bag-of-words hashed into 1024 dims, L2-normalised: a deterministic stand-in for a text tower."""
    out = np.zeros((len(texts), 1024), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 1024] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def corpus():
    return clustered_corpus(n=N_VIDEOS, dimension=16, clusters=8, positive_clusters=2, seed=3)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory, corpus):
    """W/manifest.parquet, W/embeddings/part-0.parquet, W/frames/part-0.parquet, W/truth.parquet."""
    root = tmp_path_factory.mktemp("studio-workdir")
    ids = [f"vid{i:04d}" for i in range(N_VIDEOS)]
    manifest = pa.table(
        {
            "video_id": ids,
            "uri": [f"file:///videos/{v}.mp4" for v in ids],
            "title": corpus.titles,
            "description": [f"clip {i}" for i in range(N_VIDEOS)],
        }
    )
    tables.write_table(manifest, root / "manifest.parquet", schemas.MANIFEST)
    d = corpus.embeddings.shape[1]
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(corpus.embeddings.ravel()), d)
    embeddings = pa.table({"video_id": ids, "vector": vectors, "embedder_id": ["test-embedder"] * N_VIDEOS})
    tables.write_table(embeddings, root / "embeddings" / "part-0.parquet", schemas.embeddings_schema(d))
    red, grey = _jpeg((200, 20, 20)), _jpeg((120, 120, 120))
    frame_rows = [
        {
            "video_id": v,
            "frame_index": f,
            "timestamp_s": f * 0.5,
            "width": 32,
            "height": 24,
            "jpeg": red if corpus.truth[i] else grey,
        }
        for i, v in enumerate(ids)
        for f in range(6)
    ]
    tables.write_table(
        pa.Table.from_pylist(frame_rows, schema=schemas.FRAMES), root / "frames" / "part-0.parquet", schemas.FRAMES
    )
    truth = pa.table(
        {"video_id": ids, "attribute": ["red_dominant"] * N_VIDEOS, "label": corpus.truth.astype(np.int32)}
    )
    tables.write_table(truth, root / "truth.parquet", schemas.TRUTH)
    return root


@pytest.fixture(scope="session")
def catalog(workdir):
    return load_workdir(workdir, text_encoder=hashing_text_encoder)


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("SILVERSET_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (SILVERSET_REQUIRE_POSTGRES=1)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server for the session, on a free loopback port; stopped and deleted at the end, pass or fail."""
    try:
        import psycopg  # noqa: F401 - the driver of postgresql+psycopg:// URLs
    except ImportError:
        _postgres_unavailable("psycopg is not installed (the dev extra has it: `make venv`)")
    bin_dir = find_binaries()
    if bin_dir is None:
        _postgres_unavailable(
            "PostgreSQL is not installed (no initdb/postgres): `make postgres` installs Debian's postgresql package"
        )
    server = PostgresServer(bin_dir=bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path):
    """The studio database's URL: a SQLite file in tmp_path, or an emptied database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'studio.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = server.lend_database()
    yield url
    server.give_back(url)


@pytest.fixture
def studio(catalog, tmp_path, db_url):
    studio = Studio(catalog=catalog, db_url=db_url, golden_dir=tmp_path / "golden")
    yield studio
    studio.engine.dispose()  # a test's pooled connections must not pile up on the shared server


# Everyone the API tests sign in as: name -> (role, bearer token).
PEOPLE = {
    "alice@silverset.dev": "labeler",
    "alice": "labeler",
    "bob": "labeler",
    "carol": "labeler",
    "dana": "adjudicator",
    "root": "admin",
}


@pytest.fixture(scope="session")
def users_file(tmp_path_factory):
    """A real users file: one bearer token per person (stored as sha256) and a scrypt password for 'dana'."""
    import yaml

    from silverset.components.studio.users import hash_password, hash_token

    tokens = {name: f"token-of-{name}-{i:02d}-0123456789abcdef" for i, name in enumerate(PEOPLE)}
    entries = {name: {"role": role, "token_sha256": hash_token(tokens[name])} for name, role in PEOPLE.items()}
    entries["dana"]["password"] = hash_password("correct horse battery staple", n=2**10)
    path = tmp_path_factory.mktemp("users") / "users.yaml"
    path.write_text(yaml.safe_dump({"users": entries}))
    return path, tokens


@pytest.fixture(scope="session")
def users(users_file):
    from silverset.components.studio.users import Users

    return Users.load(users_file[0])


@pytest.fixture(scope="session")
def tokens(users_file):
    return users_file[1]


def bearer(tokens, name):
    return {"Authorization": f"Bearer {tokens[name]}"}
