"""The attribute spec: a versioned YAML file (definition = teacher prompt, thresholds, gates, serving rule)."""

from __future__ import annotations

import re
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from .digest import sha256_json
from .errors import SilversetInputError
from .identity import identity_problem

NAME_PATTERN = r"^[a-z][a-z0-9_]{1,62}$"
# A spec is a page of YAML (the definition alone is at most 20,000 characters); anything far bigger is refused
# before the YAML parser spends CPU on it.
MAX_SPEC_CHARS = 256 * 1024
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class LabelType(str, Enum):
    binary = "binary"
    multiclass = "multiclass"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class TeacherGate(_Strict):
    """Bars the teacher must clear on the golden set before bulk annotation spends money."""

    min_f1: Probability = 0.7
    min_f1_lower_ci: Probability = 0.6
    min_positives: int = Field(10, ge=1)
    min_negatives: int = Field(10, ge=1)


class StudentGate(_Strict):
    """Bars the distilled student must clear against the teacher and the promoted model."""

    min_f1_retention: Probability = 0.95
    max_latency_ratio: float = Field(0.01, gt=0.0, le=1.0)
    regression_alpha: Probability = 0.05


class Gates(_Strict):
    teacher: TeacherGate = TeacherGate()
    student: StudentGate = StudentGate()
    bootstrap_samples: int = Field(1000, ge=100, le=100_000)
    seed: int = 0


class Vocabulary(_Strict):
    """Which videos join the attribute's restricted vocabulary (and so its ScaNN index)."""

    min_probability: Probability = 0.5
    max_size: int | None = Field(None, ge=1)


class Serving(_Strict):
    """Personalized restricted retrieval: who triggers it and how good the index must be."""

    affinity: Literal["share", "mean_score"] = "share"
    trigger_threshold: Probability = 0.3
    recall_target: Probability = 0.95
    default_k: int = Field(10, ge=1, le=1000)
    # A learned trigger (``silverset affinity train``; JSON, components/abtest/affinity.py): path or URI the
    # index server loads; it triggers on the model's probability and its own threshold instead of the rule.
    affinity_model: str | None = Field(None, min_length=1, max_length=2048)

    @model_serializer(mode="wrap")
    def _omit_unset_affinity_model(self, handler):
        # A spec without a learned trigger serializes (and hashes) exactly as before the field existed.
        data = handler(self)
        if data.get("affinity_model") is None:
            data.pop("affinity_model", None)
        return data


# The Gemini model a spec gets unless it names one: generally available since 2026-09-02 with no shutdown
# date announced (ai.google.dev/gemini-api/docs/deprecations and /models, checked 2026-11-30; the 2.5 models
# were withdrawn in November 2026). Its price lives in components/teacher/prices.yaml.
DEFAULT_GEMINI_MODEL = "gemini-3.8-flash"
# The wording of the teacher prompt (components/teacher/gemini.py PROMPT_TEMPLATE). It is part of the prompt
# hash, so bump it whenever that template changes; a test pins the template's digest to this number.
PROMPT_TEMPLATE_VERSION = 2


class TeacherSettings(_Strict):
    """Teacher defaults for this attribute; the CLI's flags override them.

    ``model`` is the Gemini model. The old key ``gemini_model`` is still read (with a FutureWarning, which users see) so
    existing spec files load; giving both is an error.
    """

    backend: Literal["zero-shot", "gemini", "local", "clip-zero-shot"] = "zero-shot"
    model: str = Field(DEFAULT_GEMINI_MODEL, min_length=1, max_length=200, pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    frames_per_request: int = Field(8, ge=1, le=64)

    @model_validator(mode="before")
    @classmethod
    def _read_deprecated_gemini_model(cls, data):
        if isinstance(data, dict) and "gemini_model" in data:
            if "model" in data:
                raise ValueError("give teacher.model only; teacher.gemini_model is its deprecated old name")
            warnings.warn("teacher.gemini_model is deprecated: rename it to teacher.model", FutureWarning, stacklevel=2)
            data = {("model" if k == "gemini_model" else k): v for k, v in data.items()}
        return data

    @property
    def gemini_model(self) -> str:
        """Deprecated alias of ``model`` for callers written before the rename."""
        return self.model


class AttributeSpec(_Strict):
    """One attribute, e.g. ``red_dominant`` version 2. Everything downstream is keyed by (name, version)."""

    name: str = Field(pattern=NAME_PATTERN)
    version: StrictInt = Field(ge=1, le=2**31 - 1)
    title: str = Field(min_length=1, max_length=200)
    definition: str = Field(min_length=20, max_length=20_000)
    label_type: LabelType = LabelType.binary
    classes: tuple[str, ...] = ("negative", "positive")
    decision_threshold: Probability = 0.5
    gates: Gates = Gates()
    vocabulary: Vocabulary = Vocabulary()
    serving: Serving = Serving()
    teacher: TeacherSettings = TeacherSettings()
    owners: tuple[str, ...] = Field(min_length=1)
    approvers: tuple[str, ...] = Field(min_length=1)
    allow_self_approval: bool = False
    approval_timeout_hours: float = Field(72.0, gt=0)

    @field_validator("definition", "title")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = re.sub(r"[ \t]+\n", "\n", value.strip())
        if not value:
            raise ValueError("must not be blank")
        return value

    @field_validator("approvers")
    @classmethod
    def _approvers_are_identities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for approver in value:
            problem = identity_problem(approver)
            if problem is not None:
                raise ValueError(f"approver {approver!r} {problem}")
        return value

    @model_validator(mode="after")
    def _classes_match_label_type(self) -> "AttributeSpec":
        if self.label_type is LabelType.binary and len(self.classes) != 2:
            raise ValueError(f"classes: a binary attribute has exactly 2 classes, got {len(self.classes)}")
        if self.label_type is LabelType.multiclass:
            # Room is left for multi-class labels; no stage trains or gates them yet.
            if len(self.classes) < 3:
                raise ValueError("classes: a multiclass attribute needs at least 3 classes")
            raise ValueError("label_type: multiclass attributes are not supported by the stages yet; use binary")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes: names must be unique")
        return self

    @property
    def key(self) -> str:
        """``name@vversion``, the identifier used in paths and logs."""
        return f"{self.name}@v{self.version}"

    @property
    def content_hash(self) -> str:
        """sha256 of the whole normalized spec: any change to it gives a new hash."""
        return sha256_json(self.model_dump(mode="json"))

    @property
    def prompt_hash(self) -> str:
        """sha256 of everything of the spec that reaches the teacher's prompt.

        That is the name, version, title, definition, label type, classes, the number of frames sent and
        the prompt template's version. Teacher caches and labels are keyed by this, so editing a gate
        threshold does not re-pay for labels, but editing the title, the definition or the template does.
        """
        return sha256_json(
            {
                "name": self.name,
                "version": self.version,
                "title": self.title,
                "definition": self.definition,
                "label_type": self.label_type.value,
                "classes": list(self.classes),
                "frames_per_request": self.teacher.frames_per_request,
                "template_version": PROMPT_TEMPLATE_VERSION,
            }
        )

    def normalized_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _format_validation_error(source: str, err: ValidationError) -> str:
    problems = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        msg = item["msg"].removeprefix("Value error, ")
        problems.append(f"field '{where}': {msg}")
    return "; ".join(problems)


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a mapping giving the same key twice (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN201 - PyYAML's signature
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _one_line(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())


def parse_spec(text: str, *, source: str = "<spec>") -> AttributeSpec:
    """Parse and validate YAML text; raises SilversetInputError naming the field and problem."""
    if len(text) > MAX_SPEC_CHARS:
        raise SilversetInputError(
            f"attribute spec '{source}'", f"is {len(text):,} characters; a spec is at most {MAX_SPEC_CHARS:,}"
        )
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise SilversetInputError(f"attribute spec '{source}'", f"not valid YAML: {_one_line(exc)}") from None
    if not isinstance(data, dict):
        raise SilversetInputError(f"attribute spec '{source}'", "must be a YAML mapping of fields")
    try:
        return AttributeSpec.model_validate(data)
    except ValidationError as exc:
        raise SilversetInputError(f"attribute spec '{source}'", _format_validation_error(source, exc)) from None


def load_spec(path: str | Path) -> AttributeSpec:
    """Load an attribute spec from a YAML file (local path or fsspec URI)."""
    import fsspec

    what = f"attribute spec '{path}'"
    try:
        with fsspec.open(str(path), "rb") as f:
            data = f.read(MAX_SPEC_CHARS * 4 + 1)
    except FileNotFoundError:
        raise SilversetInputError(what, "file not found") from None
    except IsADirectoryError:
        raise SilversetInputError(what, "is a folder, not a YAML file") from None
    if len(data) > MAX_SPEC_CHARS * 4:
        raise SilversetInputError(
            what, f"is over {MAX_SPEC_CHARS * 4:,} bytes; a spec is at most {MAX_SPEC_CHARS:,} characters"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SilversetInputError(
            what, f"is not UTF-8 text (a binary file?): byte {exc.start} is 0x{data[exc.start]:02x}"
        ) from None
    if "\x00" in text:
        raise SilversetInputError(what, "contains NUL bytes: it is a binary file, not YAML")
    return parse_spec(text, source=str(path))


def example_specs_dir() -> Path:
    """Folder of the example specs shipped for the synthetic corpus's attributes."""
    return Path(__file__).resolve().parent.parent / "corpus" / "attributes"
