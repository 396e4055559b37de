"""The studio's HTTP API and single-page UI (FastAPI); all logic lives in service.Studio."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import example_specs_dir

from .bandits import BATCH_SIZE
from .service import Conflict, Invalid, NotFound, Studio

STATIC_DIR = Path(__file__).resolve().parent / "static"
LABELER_PATTERN = r"^[A-Za-z0-9._@+\-]{1,128}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewAttribute(_Body):
    spec_yaml: str | None = Field(None, description="The attribute spec YAML")
    example: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{1,62}$", description="Name of a shipped example spec")
    policy: Literal["round_robin", "epsilon_greedy", "ucb"] = "ucb"


class PolicyChange(_Body):
    policy: Literal["round_robin", "epsilon_greedy", "ucb"]


class NewLabel(_Body):
    video_id: str = Field(min_length=1, max_length=256)
    label: Literal["positive", "negative", "skip"]
    labeler: str = Field(pattern=LABELER_PATTERN)
    source: str = Field("manual", pattern=r"^[a-z_:]{1,32}$")
    expected_revision: int | None = Field(None, ge=0, description="revision last seen; 0 = no label yet; omit to overwrite")


class Adjudication(_Body):
    video_id: str = Field(min_length=1, max_length=256)
    label: Literal["positive", "negative"]
    adjudicator: str = Field(pattern=LABELER_PATTERN)


class ExportRequest(_Body):
    out_dir: str | None = None


def create_app(studio: Studio) -> FastAPI:
    """FastAPI app over one Studio. Unknown attribute/video -> 404, stale edit -> 409, bad body -> 422."""
    app = FastAPI(title="Silverset studio", version="0.1.0")
    app.state.studio = studio

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "current": exc.current}, status_code=409)

    @app.exception_handler(Invalid)
    async def _invalid(_: Request, exc: Invalid) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(SilversetInputError)
    async def _bad_input(_: Request, exc: SilversetInputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/corpus")
    def corpus() -> dict:
        c = studio.catalog
        return {"videos": len(c), "dimension": int(c.embeddings.shape[1]), "embedder_id": c.embedder_id,
                "text_search": c.text_encoder is not None}

    @app.get("/api/examples")
    def examples() -> list[str]:
        return sorted(p.stem for p in example_specs_dir().glob("*.yaml"))

    @app.get("/api/attributes")
    def list_attributes() -> list[dict]:
        return studio.list_attributes()

    @app.post("/api/attributes", status_code=201)
    def create_attribute(body: NewAttribute) -> dict:
        if (body.spec_yaml is None) == (body.example is None):
            raise Invalid("give exactly one of 'spec_yaml' or 'example'")
        text = body.spec_yaml
        if body.example is not None:
            path = example_specs_dir() / f"{body.example}.yaml"
            if not path.exists():
                raise NotFound(f"unknown example spec '{body.example}'")
            text = path.read_text(encoding="utf-8")
        return studio.create_attribute(spec_yaml=text, policy=body.policy)

    @app.get("/api/attributes/{key}")
    def attribute_state(key: str) -> dict:
        return studio.state(key)

    @app.put("/api/attributes/{key}/policy")
    def set_policy(key: str, body: PolicyChange) -> dict:
        return studio.set_policy(key, body.policy)

    @app.get("/api/attributes/{key}/search")
    def search(key: str, q: str = Query(..., min_length=1, max_length=500), limit: int = Query(24, ge=1, le=200)) -> list[dict]:
        return studio.search(key, query=q, limit=limit)

    @app.get("/api/attributes/{key}/labels")
    def labels(key: str) -> list[dict]:
        return studio.labels(key)

    @app.post("/api/attributes/{key}/labels")
    def add_label(key: str, body: NewLabel) -> dict:
        label = studio.set_label(key, video_id=body.video_id, value=body.label, labeler=body.labeler,
                                 source=body.source, expected_revision=body.expected_revision)
        return {"label": label, "state": studio.state(key)}

    @app.get("/api/attributes/{key}/feeds")
    def get_feeds(key: str, limit: int = Query(BATCH_SIZE, ge=1, le=200)) -> dict:
        return studio.feeds(key, limit=limit)

    @app.post("/api/attributes/{key}/next-batch")
    def next_batch(key: str, limit: int = Query(BATCH_SIZE, ge=1, le=200)) -> dict:
        return studio.next_batch(key, limit=limit)

    @app.get("/api/attributes/{key}/disagreements")
    def disagreements(key: str) -> list[dict]:
        return studio.golden_labels(key)[1]

    @app.post("/api/attributes/{key}/adjudications")
    def adjudicate(key: str, body: Adjudication) -> dict:
        return studio.adjudicate(key, video_id=body.video_id, value=body.label, adjudicator=body.adjudicator)

    @app.get("/api/attributes/{key}/audit")
    def audit(key: str) -> list[dict]:
        return studio.audit(key)

    @app.post("/api/attributes/{key}/export")
    def export(key: str, body: ExportRequest | None = None) -> dict:
        return studio.export_golden(key, out_dir=body.out_dir if body else None)

    @app.get("/api/attributes/{key}/golden.parquet")
    def download_golden(key: str) -> Response:
        import pyarrow.parquet as pq
        import io

        table, _ = studio.golden_table(key)
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        name = key.replace("@", "_")
        return Response(buffer.getvalue(), media_type="application/vnd.apache.parquet",
                        headers={"Content-Disposition": f'attachment; filename="golden_{name}.parquet"'})

    @app.post("/api/attributes/{key}/import")
    async def import_golden(key: str, request: Request, actor: str = Query(..., pattern=LABELER_PATTERN)) -> dict:
        data = await request.body()
        if not data:
            raise Invalid("send the golden-set Parquet file as the request body")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "golden.parquet"
            path.write_bytes(data)
            try:
                return studio.import_golden(key, path=path, actor=actor)
            except (OSError, ValueError) as exc:
                if isinstance(exc, (Invalid, SilversetInputError)):
                    raise
                raise Invalid(f"golden set upload is not a readable Parquet table: {exc}") from None

    @app.get("/api/videos/{video_id}/frames/{frame_index}.jpg")
    def frame(video_id: str, frame_index: int) -> Response:
        jpeg = studio.catalog.frame_jpeg(video_id, frame_index)
        if jpeg is None:
            raise HTTPException(404, f"no frame {frame_index} for video '{video_id}'")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    return app
