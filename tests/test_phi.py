"""No identifier leaves ingestion: a real `dvc repro` from raw data to a bento, then every file it
produced is searched for planted identifiers, native ids and the pseudonym key.

The project gets, beside the demo, a site's own RIS export (`format: csv`) whose reports carry
identifiers of many kinds. The pseudonym key is a canary set only in the environment.
"""

import csv
import json
import re
import secrets
import subprocess
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.project import commit, make_project, project_env

pytestmark = pytest.mark.slow

# Identifiers in report text, each in a sentence a radiologist might write. Every one must be gone
# from everything after ingestion.
PLANTED = {
    "patient name": (
        "Comparison is made to the study of Wilhelmina Quarrington-Vosk.",
        "Quarrington-Vosk",
    ),
    "clinician": ("Findings discussed with Dr. Evander Pruitt by telephone.", "Pruitt"),
    "date": ("Compared with the radiograph of 03/14/2019, no change.", "03/14/2019"),
    "long date": ("Prior exam on September 9, 2020 showed similar findings.", "September 9, 2020"),
    "phone": ("Results called to (617) 555-0187 at the bedside.", "555-0187"),
    "email": ("Report copied to wquarrington1987@example.org.", "wquarrington1987"),
    "ssn": ("SSN 078-05-1120 recorded on the requisition.", "078-05-1120"),
    "mrn": ("MRN: 88412377. Heart size is normal.", "88412377"),
    "accession": ("Accession number ACC99120487 was reassigned.", "ACC99120487"),
    "age over 89": ("94-year-old woman with cough.", "94-year-old"),
    "url": ("Images at https://pacs.stmungo.example.org/viewer/8841 reviewed.", "stmungo"),
    "ip address": ("Transferred from workstation 10.42.17.203 without loss.", "10.42.17.203"),
}
CLINICAL = [
    "No pleural effusion or pneumothorax.",
    "Heart size is normal. Lungs are clear.",
    "Mild cardiomegaly with small bilateral pleural effusions.",
    "Right lower lobe consolidation concerning for pneumonia.",
    "Endotracheal tube terminates 4 cm above the carina.",
]


# A radiologist's user name in the sign-off of 30 reports of 10 patients (enough patients for
# the vocabulary's patient count) and a transcriptionist's initials closing each.
STAFF_HANDLE, STAFF_INITIALS = "jkwon", "KW/zt"
SIGN_OFFS = [
    "Findings called to dr. okafor by jkwon at 0315.",
    "Results discussed with the ward by jkwon at 0420.",
    "Urgent findings relayed to the ED by jkwon.",
]


def write_site_reports(folder: Path, rows: int = 36) -> None:
    """A RIS export: one report per patient, identifiers in columns and in the text; then 30
    reports of 10 patients signed off by one radiologist."""
    folder.mkdir(parents=True, exist_ok=True)
    sentences = list(PLANTED.values())
    with (folder / "reports.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["report_id", "mrn", "patient_name", "findings", "impression"])
        for i in range(rows):
            planted = sentences[i % len(sentences)][0]
            writer.writerow(
                [
                    f"RIS{700000 + i}",
                    f"7{i:07d}",
                    "QUARRINGTON^WILHELMINA",
                    f"{planted} {CLINICAL[i % len(CLINICAL)]}",
                    CLINICAL[(i + 2) % len(CLINICAL)],
                ]
            )
        for i in range(30):
            writer.writerow(
                [
                    f"RIS{800000 + i}",
                    f"8{i // 3:07d}",
                    "QUARRINGTON^WILHELMINA",
                    CLINICAL[i % len(CLINICAL)],
                    f"{SIGN_OFFS[i % 3]} {STAFF_INITIALS}",
                ]
            )


def searchable(path: Path) -> str:
    """A file's content as text: tables decoded, everything else as bytes."""
    if path.suffix == ".parquet":
        return str(pl.read_parquet(path).to_dicts())
    return path.read_bytes().decode("latin-1")


def produced_files(project: Path) -> list[Path]:
    """Everything after ingestion: tables, cache, models, metrics, the lock, the store and bentos.
    Not the raw data, the quarantine or the image locator (raw-data sensitivity, never packaged)."""
    roots = [
        "data/validated",
        "data/unified",
        "data/cache",
        "models",
        "metrics",
        "plots",
        "reports",
        ".bentoml",
        "dvc.lock",
        "params.yaml",
    ]
    files = []
    for name in roots:
        root = project / name
        files += [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
    return [f for f in files if f.name != "images.u8"]  # pixels only


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    project = make_project(tmp_path_factory.mktemp("site"))
    write_site_reports(project / "data/raw/site")
    params = yaml.safe_load((project / "params.yaml").read_text())
    columns = {
        "id": "report_id",
        "patient": "mrn",
        "text": ["findings", "impression"],
        "identifiers": ["mrn", "patient_name"],
    }
    params["data"]["sources"].append(
        {
            "name": "site",
            "kind": "text_label",
            "format": "csv",
            "path": "data/raw/site",
            "columns": columns,
        }
    )
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    commit(project, "a site's own reports")
    key = f"canary-{secrets.token_hex(16)}"
    env = project_env(project) | {"UMCL_PSEUDONYM_KEY": key}
    keyless = {k: v for k, v in env.items() if k != "UMCL_PSEUDONYM_KEY"}
    refused = subprocess.run(
        ["dvc", "repro"], cwd=project, env=keyless, capture_output=True, text=True
    )
    result = subprocess.run(["dvc", "repro"], cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {
        "project": project,
        "key": key,
        "env": env,
        "refused": refused,
        "log": result.stdout + result.stderr,
    }


def test_a_real_source_without_a_key_stops_and_says_how_to_set_one(site):
    refused = site["refused"]
    assert refused.returncode != 0
    assert "export UMCL_PSEUDONYM_KEY=" in refused.stdout + refused.stderr


def test_no_planted_identifier_survives_into_anything_produced(site):
    project = site["project"]
    triplets = pl.read_parquet(project / "data/unified/triplets.parquet")
    assert triplets.filter(pl.col("source") == "site").height == 66  # the reports did arrive
    texts = {p: searchable(p) for p in produced_files(project)}
    texts["the dvc repro log"] = site["log"]
    assert any("tokenizer.json" in str(p) for p in texts) and any(
        ".bentoml" in str(p) for p in texts
    )
    assert any("bentos" in str(p) for p in texts), "no bento was built"
    for kind, (_, identifier) in PLANTED.items():
        for where, text in texts.items():
            assert identifier.lower() not in text.lower(), f"{kind} {identifier!r} found in {where}"
    for where, text in texts.items():
        assert not re.search(r"quarrington|wilhelmina|vosk", text, re.IGNORECASE), where
        assert STAFF_HANDLE not in text.lower(), f"the staff user name found in {where}"
        assert STAFF_INITIALS.lower() not in text.lower(), f"the initials found in {where}"


def test_no_native_id_survives_and_the_key_is_in_no_file(site):
    project = site["project"]
    manifest = json.loads((project / "data/raw/demo/manifest.json").read_text())
    native = [record.split(":", 1)[1] for record in manifest["records"]]  # MIMIC and CheXpert ids
    native += [f"RIS{700000 + i}" for i in range(36)] + [f"7{i:07d}" for i in range(36)]
    native += [f"RIS{800000 + i}" for i in range(30)] + [f"8{i:07d}" for i in range(10)]
    native += ["/p1000"]  # MIMIC's subject folders
    # The demo's planted PHI: in DICOM headers, PACS folder names and the RIS exports' columns.
    phi = manifest["phi"]
    planted = {v.lower() for v in phi["mrns"] + phi["accessions"] + phi["birth_dates"]}
    planted |= {word.lower() for name in phi["names"] for word in name.split()}
    assert any(n.startswith("1.2.") for n in native)  # the PACS export's SOP Instance UIDs
    for path in produced_files(project):
        text = searchable(path)
        # A numeric id counts as a whole number: "70000004" inside a metric's 0.70000004… is none.
        leaked = [n for n in native if re.search(rf"(?<![\d.]){re.escape(n)}(?!\d)", text)]
        if path.suffix != ".py":  # the bento's copy of the demo generator holds its name lists
            # Whole tokens only: a 7-digit MRN may occur inside a content hash by chance.
            leaked += sorted(planted & set(re.findall(r"[0-9a-z/]+", text.lower())))
        assert not leaked, f"native ids or PHI {leaked[:3]} in {path.relative_to(project)}"
    canary = site["key"].encode()
    everything = [p for p in project.rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(everything) > 200
    for path in everything:
        assert canary not in path.read_bytes(), (
            f"the pseudonym key is in {path.relative_to(project)}"
        )
    assert site["key"] not in site["log"]
    assert "pseudonym_key" not in yaml.safe_load((project / "params.yaml").read_text())["data"]


def test_a_new_key_reruns_ingestion(site):
    project = site["project"]
    before = pl.read_parquet(project / "data/unified/triplets.parquet")["patient_id"].to_list()
    same = subprocess.run(
        ["dvc", "status"], cwd=project, env=site["env"], capture_output=True, text=True
    )
    assert "validate" not in same.stdout
    env = site["env"] | {"UMCL_PSEUDONYM_KEY": f"another-{secrets.token_hex(16)}"}
    out = subprocess.run(
        ["dvc", "repro", "unify"], cwd=project, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Running stage 'validate'" in out.stdout
    after = pl.read_parquet(project / "data/unified/triplets.parquet")["patient_id"].to_list()
    assert not set(before) & set(after)  # every pseudonym changed with the key
