"""Demo findings and the radiology reports that describe them.

Each sentence template carries the labels it states (1 present, 0 absent, -1 uncertain), so a
study's label row is exactly what its report says — the way CheXpert-style labels are derived
from reports — while the image shows what is really there. Wording varies: radiologists'
phrasing, synonyms, sometimes the label's own name, negations, hedges, random order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from umcl.labels import CHEXPERT_LABELS, strongest

PATHOLOGIES = [n for n in CHEXPERT_LABELS if n not in ("No Finding", "Lung Opacity")]


@dataclass
class Statement:
    text: str
    labels: dict[str, int] = field(default_factory=dict)


def sample_findings(rng: np.random.Generator, no_finding_fraction: float) -> dict[str, str]:
    """Visible findings (label → side) with realistic co-occurrence."""
    if rng.random() < no_finding_fraction:
        return {"Support Devices": "left"} if rng.random() < 0.05 else {}
    present: set[str] = set()

    def maybe(label: str, p: float) -> None:
        if rng.random() < p:
            present.add(label)

    maybe("Cardiomegaly", 0.3)
    maybe("Edema", 0.45 if "Cardiomegaly" in present else 0.08)
    maybe("Pleural Effusion", 0.45 if "Edema" in present else 0.25)
    maybe("Atelectasis", 0.5 if "Pleural Effusion" in present else 0.12)
    maybe("Pneumonia", 0.16)
    maybe("Consolidation", 0.7 if "Pneumonia" in present else 0.08)
    maybe("Pneumothorax", 0.08)
    maybe("Lung Lesion", 0.1)
    maybe("Enlarged Cardiomediastinum", 0.3 if "Cardiomegaly" in present else 0.07)
    maybe("Support Devices", 0.22)
    maybe("Pleural Other", 0.03)
    maybe("Fracture", 0.03)
    if not present:
        present.add(str(rng.choice(PATHOLOGIES)))
    side = str(rng.choice(["left", "right"]))
    # Effusion-related atelectasis and pneumonia-related consolidation share the finding's side.
    return {
        label: side
        if label in ("Atelectasis", "Consolidation", "Pleural Effusion", "Pneumonia")
        else str(rng.choice(["left", "right"]))
        for label in sorted(present)
    }


def _positive(label: str, side: str, rng: np.random.Generator) -> Statement:
    s = side
    choices: dict[str, list[Statement]] = {
        "Cardiomegaly": [
            Statement("The heart is enlarged."),
            Statement("Cardiomegaly."),
            Statement("Moderate cardiomegaly."),
            Statement("Enlarged cardiac silhouette."),
            Statement("Heart size is increased."),
        ],
        "Enlarged Cardiomediastinum": [
            Statement("The mediastinum is widened."),
            Statement("Widened mediastinum."),
            Statement("Enlarged cardiomediastinum."),
            Statement("The superior mediastinal contour is widened."),
        ],
        "Lung Lesion": [
            Statement(f"A rounded nodule is seen in the {s} upper lung."),
            Statement(f"{s.capitalize()} upper lobe pulmonary nodule."),
            Statement(f"Lung lesion in the {s} mid lung zone."),
            Statement(f"Well-circumscribed mass in the {s} lung."),
        ],
        "Edema": [
            Statement("Bilateral perihilar haziness consistent with pulmonary edema."),
            Statement("Pulmonary edema."),
            Statement("Interstitial edema."),
            Statement("Mild pulmonary vascular congestion and edema."),
        ],
        "Consolidation": [
            Statement(f"Consolidation in the {s} lower lobe."),
            Statement(f"Dense {s} lower lobe consolidation."),
            Statement(f"Focal airspace consolidation in the {s} lung."),
        ],
        "Pneumonia": [
            Statement("Findings consistent with pneumonia."),
            Statement(f"{s.capitalize()} lower lobe pneumonia."),
            Statement(
                f"Patchy airspace opacity in the {s} lower lung compatible with pneumonia.",
                {"Lung Opacity": 1},
            ),
        ],
        "Atelectasis": [
            Statement(f"{s.capitalize()} basilar atelectasis."),
            Statement(
                f"Linear opacity at the {s} base compatible with atelectasis.", {"Lung Opacity": 1}
            ),
            Statement(f"Plate-like atelectasis in the {s} lower lung."),
            Statement(f"Subsegmental atelectasis at the {s} lung base."),
        ],
        "Pneumothorax": [
            Statement(f"{s.capitalize()} apical pneumothorax."),
            Statement(f"There is a moderate {s} pneumothorax."),
            Statement(f"A visceral pleural line at the {s} apex is consistent with pneumothorax."),
        ],
        "Pleural Effusion": [
            Statement(f"{s.capitalize()} pleural effusion."),
            Statement(f"Blunting of the {s} costophrenic angle due to a small effusion."),
            Statement(f"Moderate {s} pleural effusion."),
            Statement(f"Layering fluid at the {s} base consistent with effusion."),
        ],
        "Support Devices": [
            Statement("Endotracheal tube terminates above the carina."),
            Statement("Support devices in place."),
            Statement(
                "Endotracheal tube and right internal jugular central venous catheter in standard position."
            ),
            Statement("Lines and tubes are unchanged in position."),
        ],
        "Pleural Other": [Statement(f"Pleural thickening along the {s} lateral chest wall.")],
        "Fracture": [
            Statement(f"Healing fracture of a {s} rib."),
            Statement(f"Acute {s} rib fracture."),
        ],
    }
    statement = choices[label][rng.integers(len(choices[label]))]
    return Statement(statement.text, {label: 1, **statement.labels})


_HEDGE_NOUN = {
    "Cardiomegaly": "mild cardiomegaly",
    "Enlarged Cardiomediastinum": "mediastinal widening",
    "Lung Lesion": "a small pulmonary nodule",
    "Edema": "mild pulmonary edema",
    "Consolidation": "consolidation",
    "Pneumonia": "pneumonia",
    "Atelectasis": "atelectasis",
    "Pneumothorax": "a small pneumothorax",
    "Pleural Effusion": "a small pleural effusion",
    "Pleural Other": "pleural thickening",
    "Fracture": "a rib fracture",
}
_HEDGES = (
    "Possible {}.",
    "{} cannot be excluded.",
    "Findings may represent {}.",
    "Questionable {}.",
)


def _hedged(label: str, rng: np.random.Generator) -> Statement:
    template = _HEDGES[rng.integers(len(_HEDGES))]
    text = template.format(_HEDGE_NOUN[label])
    return Statement(text[0].upper() + text[1:], {label: -1})


_NEGATION_NOUN = {
    "Cardiomegaly": "cardiomegaly",
    "Lung Lesion": "pulmonary nodules",
    "Edema": "pulmonary edema",
    "Consolidation": "focal consolidation",
    "Pneumonia": "pneumonia",
    "Atelectasis": "atelectasis",
    "Pneumothorax": "pneumothorax",
    "Pleural Effusion": "pleural effusion",
    "Fracture": "acute rib fracture",
}
_NEGATION_SENTENCES = {
    "Cardiomegaly": ["Heart size is normal.", "The heart is not enlarged.", "Normal heart size."],
    "Enlarged Cardiomediastinum": [
        "Mediastinal contours are normal.",
        "The mediastinum is not widened.",
    ],
    "Pneumothorax": ["There is no pneumothorax.", "No evidence of pneumothorax."],
    "Pleural Effusion": ["No pleural effusion.", "No effusion."],
    "Edema": ["No evidence of pulmonary edema."],
    "Consolidation": ["No focal consolidation."],
}


def _negations(labels: list[str], rng: np.random.Generator) -> list[Statement]:
    """'No X.' sentences, sometimes lists ('No pleural effusion or pneumothorax.')."""
    statements: list[Statement] = []
    pending = [label for label in labels if label in _NEGATION_NOUN or label in _NEGATION_SENTENCES]
    rng.shuffle(pending)
    while pending:
        listable = [label for label in pending[:3] if label in _NEGATION_NOUN]
        if len(listable) >= 2 and rng.random() < 0.45:
            nouns = [_NEGATION_NOUN[label] for label in listable]
            text = (
                "No "
                + (", ".join(nouns[:-1]) + (", or " if len(nouns) > 2 else " or ") + nouns[-1])
                + "."
            )
            statements.append(Statement(text, dict.fromkeys(listable, 0)))
            pending = [label for label in pending if label not in listable]
            continue
        label = pending.pop(0)
        options = list(_NEGATION_SENTENCES.get(label, []))
        if label in _NEGATION_NOUN:
            options.append(f"No {_NEGATION_NOUN[label]}.")
        statements.append(Statement(options[rng.integers(len(options))], {label: 0}))
    return statements


_NORMAL = [
    Statement("The lungs are clear."),
    Statement("Lungs are clear bilaterally."),
    Statement("No acute cardiopulmonary process."),
    Statement("Normal chest radiograph."),
    Statement("No acute cardiopulmonary abnormality."),
]


@dataclass
class Report:
    findings: list[str]
    impression: list[str]
    labels: dict[str, int | None]


def describe(findings: dict[str, str], rng: np.random.Generator) -> Report:
    """Report sentences and the label row they imply (None = not mentioned)."""
    statements: list[Statement] = []
    for label, side in findings.items():
        hedge = label != "Support Devices" and rng.random() < 0.07
        statements.append(_hedged(label, rng) if hedge else _positive(label, side, rng))
    absent = [label for label in PATHOLOGIES if label not in findings]
    negated = [label for label in absent if rng.random() < 0.4]
    statements += _negations(negated, rng)
    hedged_absent = [
        label
        for label in absent
        if label not in negated and label in _HEDGE_NOUN and rng.random() < 0.025
    ]
    statements += [_hedged(label, rng) for label in hedged_absent]

    pathology_stated = any(
        value in (1, -1)
        for s in statements
        for label, value in s.labels.items()
        if label != "Support Devices"
    )
    if not pathology_stated:
        statements.append(_NORMAL[rng.integers(2)])

    labels: dict[str, int | None] = {}
    for name in CHEXPERT_LABELS:
        labels[name] = strongest(s.labels.get(name) for s in statements)
    labels["No Finding"] = None if pathology_stated else 1

    order = rng.permutation(len(statements))
    body = [statements[i].text for i in order]
    positives = [s.text for s in statements if any(v == 1 for v in s.labels.values())]
    if pathology_stated and positives:
        impression = positives[: 1 + int(rng.integers(2))]
    else:
        impression = [_NORMAL[2 + rng.integers(3)].text]
    return Report(findings=body, impression=impression, labels=labels)
