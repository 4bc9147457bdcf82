"""The settings of the data side, from the raw sources to the preprocessed cache: which sources
are read and how (their columns and views), the patient split, the label space, the synthetic
demo, what validation and image decoding accept, and the cache's size."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from umcl.config.base import SourceKind, Strict, UncertaintyPolicy

SourceFormat = Literal[
    "mimic_cxr", "chexpert", "chestxray14", "openi", "folders", "csv", "dicom_folder"
]


# The projections a source's `views` may name (umcl/ingest/views.py keeps images by them): DICOM
# ViewPosition's defined terms, the other values MIMIC-CXR's metadata uses, FRONTAL and LATERAL
# (each side whatever its direction), UNKNOWN (images whose view nothing states).
VIEW_NAMES = frozenset(
    {
        "PA",
        "AP",
        "LL",
        "RL",
        "RLD",
        "LLD",
        "RLO",
        "LLO",
        "LAO",
        "RAO",
        "LPO",
        "RPO",
        "AP AXIAL",
        "PA LLD",
        "PA RLD",
        "AP LLD",
        "AP RLD",
        "SWIMMERS",
        "XTABLE LATERAL",
        "FRONTAL",
        "LATERAL",
        "UNKNOWN",
    }
)


def normalise_view(raw: object) -> str | None:
    """'pa ' → 'PA', 'xtable_lateral' → 'XTABLE LATERAL', '' → None."""
    if raw is None:
        return None
    return " ".join(re.split(r"[\s_]+", str(raw).strip().upper())).strip() or None


class CsvColumns(Strict):
    """Column names of a generic CSV source (`format: csv`)."""

    id: str  # unique record id within the source
    patient: str | None = None  # patient id; each record is its own patient when absent
    image: str | None = None  # image path, relative to the source folder
    text: list[str] = Field(default_factory=list)  # report columns, joined in this order
    labels: list[str] = Field(
        default_factory=list
    )  # label columns, mapped to the label space by name
    identifiers: list[str] = Field(
        default_factory=list
    )  # PHI columns (name, MRN) scrubbed from text
    view: str | None = None  # the image's projection (PA, AP, LATERAL, …), filtered by `views`


class RisColumns(Strict):
    """Column names of a RIS export, joined to a PACS export by accession (`format: dicom_folder`)."""

    accession: str  # the accession number the DICOM headers carry (AccessionNumber)
    text: list[str] = Field(default_factory=list)  # report columns, joined in this order
    patient: str | None = None  # patient id (e.g. the MRN); else the DICOM PatientID
    labels: list[str] = Field(default_factory=list)  # label columns, mapped by name
    identifiers: list[str] = Field(default_factory=list)  # PHI columns scrubbed from the text


class SourceSettings(Strict):
    """One raw dataset. `format` picks the reader; `kind` says which modalities it carries."""

    name: str
    kind: SourceKind
    format: SourceFormat
    path: Path
    # Required by `format: csv` (CsvColumns) and `format: dicom_folder` (RisColumns).
    columns: CsvColumns | RisColumns | None = None
    images: Path | None = None  # image folder, where the format keeps images apart (openi)
    reports: Path | None = None  # the RIS export (CSV) of a `dicom_folder` source
    # The projections kept, where the format says which an image shows (umcl/ingest/views.py);
    # UNKNOWN keeps images whose view nothing states.
    views: list[str] = Field(default_factory=lambda: ["PA", "AP"], min_length=1)
    patient_pattern: str | None = (
        None  # regex with one group: patient id from a file name (folders)
    )
    text_columns: list[str] = Field(default_factory=lambda: ["findings", "impression"])  # openi

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        # The name becomes file names (quarantine/<name>.parquet) and sample-id prefixes.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
            raise ValueError("must be letters, digits, '_' or '-' (it names files and sample ids)")
        return name

    @field_validator("patient_pattern")
    @classmethod
    def _one_group(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return pattern
        try:
            groups = re.compile(pattern).groups
        except re.error as exc:  # not a ValueError: it would escape the params check
            raise ValueError(f"not a regular expression ({exc})") from None
        if groups != 1:
            raise ValueError("must be a regular expression with exactly one group")
        return pattern

    @field_validator("views")
    @classmethod
    def _named_views(cls, views: list[str]) -> list[str]:
        normalised = [normalise_view(v) or "" for v in views]
        unknown = [v for v, n in zip(views, normalised, strict=True) if n not in VIEW_NAMES]
        if unknown:
            raise ValueError(f"{unknown} are not views; use {sorted(VIEW_NAMES)}")
        return normalised

    @model_validator(mode="after")
    def _columns_for_the_format(self) -> SourceSettings:
        if self.format == "csv" and not isinstance(self.columns, CsvColumns):
            raise ValueError(
                "format 'csv' needs a 'columns' block naming the id, text and label columns"
            )
        if self.format == "dicom_folder":
            if not isinstance(self.columns, RisColumns) or self.reports is None:
                raise ValueError(
                    "format 'dicom_folder' needs 'reports' (the RIS export, a CSV) and a 'columns' "
                    "block naming its accession column and its text or label columns"
                )
            needed = self.columns.labels if self.kind == "image_label" else self.columns.text
            if self.kind == "text_label" or not needed:
                raise ValueError(
                    "format 'dicom_folder' reads images: kind image_text needs columns.text, "
                    "kind image_label needs columns.labels"
                )
        return self


class SplitSettings(Strict):
    """Deterministic patient-level split; the rest of the patients go to train."""

    val: float = Field(0.1, ge=0, lt=1)
    test: float = Field(0.15, ge=0, lt=1)

    @model_validator(mode="after")
    def _leaves_train(self) -> SplitSettings:
        if self.val + self.test >= 1:
            raise ValueError("val + test must be below 1 so that some patients train")
        return self


class DataSettings(Strict):
    sources: list[SourceSettings] = Field(min_length=1)
    split: SplitSettings = SplitSettings()

    @model_validator(mode="before")
    @classmethod
    def _no_key_in_params(cls, raw: Any) -> Any:
        # A key in params reaches git, dvc.lock and model metadata (umcl/ingest/pseudonyms.py).
        if isinstance(raw, dict) and "pseudonym_key" in raw:
            raise ValueError(
                "pseudonym_key is no longer read from params: delete it and set the key in the "
                "environment (UMCL_PSEUDONYM_KEY) or in .umcl/pseudonym.key (git-ignored)"
            )
        return raw

    @model_validator(mode="after")
    def _unique_names(self) -> DataSettings:
        names = [s.name for s in self.sources]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"source names must be unique; repeated: {duplicated}")
        return self


class CustomFinding(Strict):
    """A site's own finding: its label name and the words or phrases a report uses for it
    (whole words, any case; a plural `s`/`es` also matches). The labeler's negation and
    uncertainty rules apply to it as to the built-in findings."""

    # Names and phrases hold a letter and no surrounding spaces (the service strips the names
    # callers send, so "Hernia " could never be asked for; a blank phrase would match anywhere).
    name: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^\S(?:.*\S)?$")]
    phrases: list[Annotated[str, Field(max_length=120, pattern=r"^\S(?:.*\S)?$")]] = Field(
        min_length=1
    )

    @field_validator("name", "phrases")
    @classmethod
    def _has_a_letter(cls, value: str | list[str]) -> str | list[str]:
        for text in [value] if isinstance(value, str) else value:
            if not re.search(r"[^\W\d_]", text):
                raise ValueError(f"{text!r} has no letter")
        return value


class LabelSettings(Strict):
    names: list[str] | None = None  # the label space; default: the 14 CheXpert observations
    synonyms: dict[str, str] = Field(default_factory=dict)  # extra source name → label name
    uncertainty: UncertaintyPolicy = "zeros"  # how -1 (uncertain) is used in training
    # Findings added to the label space, each with the phrases that mention it in a report;
    # a built-in name listed here gets these phrases on top of its own.
    custom: list[CustomFinding] = Field(default_factory=list)


class DemoSettings(Strict):
    """Size and shape of the synthetic demo studies (`umcl demo`)."""

    # Where `umcl demo` writes, as a list so that dvc.yaml makes one demo stage per entry:
    # [] (the default) means no demo stage, no demo data. At most one folder.
    out: list[Path] = Field(default_factory=list, max_length=1)
    image_text_studies: int = Field(2600, ge=1)  # MIMIC-CXR-like image + report studies
    image_label_studies: int = Field(1600, ge=1)  # CheXpert-like image + label-table studies
    text_label_studies: int = Field(1400, ge=1)  # reports with no image
    pacs_studies: int = Field(300, ge=0)  # PACS export (DICOM tree) + RIS export of reports
    labelled_fraction: float = Field(0.5, ge=0, le=1)  # MIMIC-like studies in the chexpert csv
    max_studies_per_patient: int = Field(3, ge=1)
    image_size: int = Field(128, ge=64, le=1024)  # DICOM width in pixels (height varies)
    fault_rate: float = Field(0.006, ge=0, le=0.2)  # planted faults per record and fault kind
    no_finding_fraction: float = Field(0.35, ge=0, le=1)

    @field_validator("out", mode="before")
    @classmethod
    def _one_folder(cls, out: Any) -> Any:
        return [out] if isinstance(out, str | Path) else out

    @property
    def folder(self) -> Path | None:
        """The folder the demo is written to, or None when the demo is off."""
        return self.out[0] if self.out else None


class ValidateSettings(Strict):
    max_bad_fraction: float = Field(0.05, ge=0, le=1)  # a source worse than this stops the run
    # A longer report is quarantined (report_too_long) before de-identification reads it: time
    # and memory per record stay bounded, and a whole export's ingestion never stops on one.
    max_report_chars: int = Field(100_000, ge=1_000, le=900_000)


class DecodeSettings(Strict):
    """What ingestion accepts as an image (the service reads UMCL_MAX_PIXELS and
    UMCL_DICOM_MODALITIES instead). Params, so that DVC reruns ingestion when they change."""

    max_pixels: int = Field(
        50_000_000, ge=1
    )  # decoded pixels per image, read from its header first
    dicom_modalities: list[str] = Field(
        default_factory=lambda: ["CR", "DX"], min_length=1
    )  # ["*"]: any


class PreprocessSettings(Strict):
    image_size: int = Field(64, ge=16, le=1024)  # S of the S×S cache
    workers: int = Field(0, ge=0)  # 0 = one per core
