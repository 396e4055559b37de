"""Studio fixtures: a small clustered corpus with known truth, written as real workdir tables."""
from __future__ import annotations

import hashlib
import io
import re

import numpy as np
import pyarrow as pa
import pytest

from silverset.components.common import schemas, tables
from silverset.components.studio.catalog import load_workdir
from silverset.components.studio.service import Studio
from silverset.components.studio.simulate import clustered_corpus

N_VIDEOS = 240


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
    manifest = pa.table({"video_id": ids, "uri": [f"file:///videos/{v}.mp4" for v in ids], "title": corpus.titles,
                         "description": [f"clip {i}" for i in range(N_VIDEOS)]})
    tables.write_table(manifest, root / "manifest.parquet", schemas.MANIFEST)
    d = corpus.embeddings.shape[1]
    embeddings = pa.table({"video_id": ids, "vector": pa.FixedSizeListArray.from_arrays(pa.array(corpus.embeddings.ravel()), d),
                           "embedder_id": ["test-embedder"] * N_VIDEOS})
    tables.write_table(embeddings, root / "embeddings" / "part-0.parquet", schemas.embeddings_schema(d))
    red, grey = _jpeg((200, 20, 20)), _jpeg((120, 120, 120))
    frame_rows = [{"video_id": v, "frame_index": f, "timestamp_s": f * 0.5, "width": 32, "height": 24,
                   "jpeg": red if corpus.truth[i] else grey} for i, v in enumerate(ids) for f in range(6)]
    tables.write_table(pa.Table.from_pylist(frame_rows, schema=schemas.FRAMES), root / "frames" / "part-0.parquet", schemas.FRAMES)
    truth = pa.table({"video_id": ids, "attribute": ["red_dominant"] * N_VIDEOS, "label": corpus.truth.astype(np.int32)})
    tables.write_table(truth, root / "truth.parquet", schemas.TRUTH)
    return root


@pytest.fixture(scope="session")
def catalog(workdir):
    return load_workdir(workdir, text_encoder=hashing_text_encoder)


@pytest.fixture
def studio(catalog, tmp_path):
    return Studio(catalog=catalog, db_url=f"sqlite:///{tmp_path / 'studio.db'}", golden_dir=tmp_path / "golden")


# Everyone the API tests sign in as: name -> (role, bearer token).
PEOPLE = {"alice@silverset.dev": "labeler", "alice": "labeler", "bob": "labeler", "carol": "labeler",
          "dana": "adjudicator", "root": "admin"}


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
