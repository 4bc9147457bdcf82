"""Report → labels (1 positive, 0 negative, -1 uncertain, None not mentioned).

A rule-based labeler in the spirit of the CheXpert and NegBio labelers, with our own phrase
lists: find mentions of each observation, then read each mention's clause for negation
("no", "without", "… is not seen") and uncertainty ("may", "cannot exclude", "… versus …").
Anatomy-based observations (heart size, mediastinum) are mentioned only with a descriptor:
"heart size is normal" says no cardiomegaly, "the heart is enlarged" says cardiomegaly.
A label's mentions combine as CheXpert's do: any positive wins, then uncertain, then negative.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from tqdm import tqdm

from umcl.labels import CHEXPERT_LABELS, NEGATIVE, POSITIVE, UNCERTAIN, strongest

# Mentions that assert an observation by themselves.
MENTIONS: dict[str, str] = {
    "Enlarged Cardiomediastinum": r"enlarged cardiomediastinum|mediastinal (?:widening|enlargement)",
    "Cardiomegaly": r"cardiomegal\w*|cardiac enlargement|enlarged heart|cardiac hypertrophy",
    "Lung Lesion": r"nodul\w*|\bmass(?:es)?\b|(?:lung|pulmonary|cavitary|focal|parenchymal) lesions?"
    r"|tumou?r|neoplasm|carcinoma|malignan\w*",
    "Lung Opacity": r"opacit\w*|opacification|infiltrat\w*|air[- ]?space (?:disease|process)"
    r"|ground[- ]glass|haziness|hazy|reticul\w*|increased (?:lung )?density|scarring|\bscar\b",
    "Edema": r"edema|oedema|kerley",
    "Consolidation": r"consolidat\w*",
    "Pneumonia": r"pneumonia\w*|bronchopneumonia|pneumonitis|(?:pulmonary|lung|chest) infection"
    r"|infectious process",
    "Atelectasis": r"atelecta\w*|collapse",
    "Pneumothorax": r"pneumothora\w*|hydropneumothorax",
    "Pleural Effusion": r"effusions?|pleural fluid|hydrothorax|hemothorax",
    "Pleural Other": r"pleural thickening|pleural plaques?|fibrothorax|pleural (?:parenchymal )?scar\w*"
    r"|pleuro-?parenchymal scar\w*",
    "Fracture": r"fractur\w*",
    "Support Devices": r"(?:endotracheal|tracheostomy|\bet|\bng|\bog|nasogastric|orogastric|enteric"
    r"|feeding|chest|dobhoff|gastric) tubes?|tubes?\b|(?:central venous|central|picc|venous|arterial"
    r"|swan[- ]ganz|jugular|subclavian|\bij|dialysis|port) (?:line|catheter)s?|catheters?|\blines\b"
    r"|pacemaker|pacer|\bicd\b|defibrillator|\bleads?\b|stents?|(?:port|mediport|porta?cath)\b"
    r"|prosthetic valve|valve replacement|hardware|support devices?|drains?\b|sternotomy wires",
}
# Mentions that do not count (a pericardial effusion is not a pleural one).
UNMENTIONS: dict[str, str] = {
    "Pleural Effusion": r"pericardial effusions?",
    "Lung Lesion": r"calcified (?:\w+ )?nodul\w*|massive|mass effect|soft tissue mass",
    "Lung Opacity": r"pleural scar\w*|pleuro-?parenchymal scar\w*",
    "Support Devices": r"kerley [ab]? ?lines|septal lines|pleural line|\bleads? to\b",
    "Pneumonia": r"infection control",
}
# Anatomy whose mention only counts with a descriptor.
ANATOMY: dict[str, str] = {
    "Cardiomegaly": r"heart(?: size| shadow| contour)?|cardiac (?:silhouette|size|shadow|contours?|diameter)"
    r"|cardiomediastinal (?:silhouette|contours?|size)",
    "Enlarged Cardiomediastinum": r"mediastin\w*(?: contours?| silhouette| width)?"
    r"|cardiomediastinal (?:silhouette|contours?|size)|hila|hilar contours?",
    "Pleural Effusion": r"costophrenic (?:angles?|sulc\w*|recess\w*)",
}
_ABNORMAL = r"enlarg\w*|increased|large|widen\w*|wide|prominen\w*|dilat\w*|blunt\w*"
_NORMAL = (
    r"normal|within normal limits|unremarkable|sharp|clear|not (?:be )?(?:\w+ )?(?:enlarged|widened|increased"
    r"|dilated|blunted)|no longer enlarged|stable in size and normal"
)
_BORDERLINE = r"borderline|upper limits? of normal|top(?:-| )normal|at the upper range"
# "Normal heart size and mediastinal contours": the second item of a list after "normal".
_NORMAL_LIST = r"\bnormal(?:-sized)?\s+(?:[\w-]+\s+){0,2}[\w-]+(?:,\s+(?:and\s+)?|\s+and\s+)$"
# "Stable cardiomediastinal silhouette", "heart and mediastinum unchanged": the size is not
# stated, only that it has not changed; the CheXpert labeler reads that as uncertain. Applied to
# the mediastinum only: for the heart, NegBio's gold labels read it as normal (Cardiomegaly's
# mention precision fell from 0.75 to 0.60 on them, benchmarks/labeler_negbio.py).
# Only said of the contour itself, right next to it ("mediastinal clips are unchanged" says
# nothing about the mediastinum's size).
_UNCHANGED = r"stable|unchanged|not changed|similar (?:in appearance )?to (?:the )?prior"
_UNCHANGED_BEFORE = rf"\b(?:{_UNCHANGED})\W*$"
_UNCHANGED_AFTER = rf"^(?:(?:is|are|remains?|appears?)\s+)?(?:{_UNCHANGED})\b"

# Other abnormalities: not in the label space, but a report mentioning one is not "normal".
OTHER_ABNORMALITIES = (
    r"emphysema|copd|chronic obstructive|hyperinfla\w*|hyperexpan\w*|bullae|bullous|granulom\w*"
    r"|calcifi\w*|scoliosis|kyphosis|degenerat\w*|spondylo\w*|osteophyt\w*|osteopeni\w*|hernia"
    r"|eventration|elevat\w* (?:\w+ )?(?:hemi)?diaphragm|tortuous|ectatic|atherosclero\w*|fibrosis"
    r"|bronchiectasis|thickening|deformit\w*|cicatri\w*|surgical clips|metasta\w*|cyst\w*"
    r"|lymphadenopathy|adenopathy|flattening|blunting|volume loss|cavit\w*|airway disease"
    r"|bronchitis|asthma|sarcoid\w*|lucenc\w*|pneumomediastinum|pneumoperitoneum|abnormal|arthrit\w*"
    r"|low lung volumes?|hypoinfla\w*|(?:hemi)?diaphragm\w* (?:is |are )?(?:\w+ )?elevat\w*|broken"
    r"|sternotomy|cabg|post-?operative|post-?surgical|\w+ectomy|\w+plasty|prosthe\w*"
)

_NEGATION_BEFORE = re.compile(
    r"\b(?:no|not|without|negative(?: for)?|free of|clear of|absence of|rather than|resolution of"
    r"|resolved|removal of|nor)\b"
)
_PSEUDO_NEGATION = re.compile(
    r"\b(?:no|not) (?:significant |substantial |appreciable |interval |definite )?(?:change|changed"
    r"|increase|decrease|improve\w*|worse\w*)\b|\bnot only\b|\bno longer\b(?! (?:seen|present|visualized))"
    r"|\bno new\b(?= \w+ or\b)"
)
_NEGATION_AFTER = re.compile(
    r"^\W*(?:(?:is|are|was|were|has|have|has been|have been)\s+)?(?:not (?:seen|identified|present"
    r"|visualized|demonstrated|appreciated|evident|noted|detected)|absent|resolved|removed|no longer"
    r"|(?:been )?ruled out|excluded)\b"
)
_UNCERTAIN_BEFORE = re.compile(
    r"\b(?:possibl\w*|probabl\w*|likely|may|might|could|questionabl\w*|question of|suspicious"
    r"|suspect\w*|concern\w*|suggest\w*|differential|equivocal|indeterminate|versus|vs|cannot"
    r"|can not|presumed|borderline|worrisome|favor\w*|consider(?!ing)\w*)\b"
)
_UNCERTAIN_AFTER = re.compile(
    r"^\W*(?:(?:is|are|was|were)\s+)?(?:(?:not|cannot be|can not be|could not be) (?:excluded"
    r"|ruled out)|possible|suspected|questioned|(?:versus|vs\.?)|(?:may|might|could) be)\b"
)
# Patterns anchored at the end of a mention's context read only its last characters: scanning
# a whole clause would be quadratic in the length of a pathological token.
TAIL = 120
_NEGATED_SUSPICION = re.compile(
    r"\b(?:no|without)\s+(?:(?:other|new|definite|focal|acute)\s+)?(?:suspicious|concerning"
    r"|worrisome)\s+(?!(?:interval\s+)?(?:change|increase|progression|growth|enlargement)\b)"
    r"(?:[\w-]+\s+){0,4}$"
)
_CLAUSE_BREAK = re.compile(
    r",?\s+\b(?:but|however|although|though|which|whereas|except|otherwise|there (?:is|are))\b"
    r"|;|:|\s-\s|,\s+(?=(?:and )?(?:there|the|a|an|with|new|stable|\w+ (?:is|are))\b)"
)
_SENTENCE = re.compile(r"(?<!\d)\.(?!\d)|\n+|\?|!|(?:^|\s)\d\.\s")


def _clauses(text: str) -> Iterable[str]:
    for sentence in _SENTENCE.split(text.lower()):
        yield from (c.strip() for c in _CLAUSE_BREAK.split(sentence) if c and c.strip())


def _polarity(clause: str, start: int, end: int) -> int:
    """Read the context of a mention at clause[start:end]."""
    before, after = clause[:start], clause[end:]
    if _NEGATED_SUSPICION.search(before[-TAIL:]) and not _UNCERTAIN_AFTER.search(after):
        return NEGATIVE  # "no suspicious opacity": the suspicion itself is denied
    if _UNCERTAIN_AFTER.search(after) or _UNCERTAIN_BEFORE.search(before):
        return UNCERTAIN
    if _NEGATION_AFTER.search(after):
        return NEGATIVE
    trigger = None
    for match in _NEGATION_BEFORE.finditer(before):
        if not _PSEUDO_NEGATION.match(before, match.start()):
            trigger = match
    return NEGATIVE if trigger else POSITIVE


def _masked(clause: str, pattern: str | None) -> str:
    """Blank out unmentions so they cannot match, keeping positions."""
    if pattern is None:
        return clause
    return re.sub(pattern, lambda m: " " * len(m.group()), clause)


def _anatomy_mentions(label: str, clause: str) -> list[int]:
    """Values stated by anatomy mentions with a descriptor (bare anatomy states nothing)."""
    found = []
    for match in re.finditer(rf"\b(?:{ANATOMY[label]})\b", clause):
        words_before = " ".join(clause[: match.start()].split()[-3:])
        listed_after_normal = re.search(_NORMAL_LIST, clause[: match.start()][-TAIL:])
        tail = " ".join(clause[match.end() :].split()[:7])
        if re.search(rf"\b(?:{_BORDERLINE})\b", f"{words_before} {tail}"):
            found.append(UNCERTAIN)
        elif re.search(rf"\b(?:{_NORMAL})\b", tail) or re.search(
            r"\bnormal(?:-sized)?\b\W*(?:\w+\W+)?$", words_before
        ):
            found.append(NEGATIVE)
        elif re.search(rf"\b(?:{_ABNORMAL})\b", tail) or re.search(
            rf"\b(?:{_ABNORMAL})\b\W*$", words_before
        ):
            value = _polarity(clause, match.start(), match.end())
            found.append(value)
        elif listed_after_normal:  # after the abnormal tail: "normal heart and widened mediastinum"
            found.append(NEGATIVE)
        elif label == "Enlarged Cardiomediastinum" and (
            re.search(_UNCHANGED_BEFORE, words_before) or re.search(_UNCHANGED_AFTER, tail)
        ):
            found.append(UNCERTAIN)
    return found


def phrase_pattern(phrases: Iterable[str]) -> str:
    """A mention pattern for a site's own finding: each phrase as whole words, any spacing,
    with an optional plural."""
    alternatives = (r"\s+".join(map(re.escape, p.lower().split())) for p in phrases)
    return "|".join(rf"(?:{a})(?:e?s)?\b" for a in alternatives)


def label_report(
    text: str | None,
    labels: Iterable[str] = CHEXPERT_LABELS,
    phrases: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, int | None]:
    """One value per label: 1, 0, -1, or None when the report does not mention it. `phrases`:
    the mentions of the site's own findings (`labels.custom`), added to any built-in ones."""
    wanted = tuple(labels)
    mentions = dict(MENTIONS)
    for name, words in (phrases or {}).items():
        mentions[name] = "|".join(filter(None, [mentions.get(name), phrase_pattern(words)]))
    values: dict[str, list[int]] = {name: [] for name in (*CHEXPERT_LABELS, *mentions)}
    other_abnormality = False
    clauses = list(_clauses(text or ""))
    for clause in clauses:
        for label, pattern in mentions.items():
            scan = _masked(clause, UNMENTIONS.get(label))
            for match in re.finditer(rf"\b(?:{pattern})", scan):
                values[label].append(_polarity(clause, match.start(), match.end()))
        for label in ANATOMY:
            values[label] += _anatomy_mentions(label, clause)
        for match in re.finditer(rf"\b(?:{OTHER_ABNORMALITIES})", clause):
            if _polarity(clause, match.start(), match.end()) != NEGATIVE:
                other_abnormality = True

    result = {name: strongest(v) for name, v in values.items()}
    findings = [n for n in result if n not in ("No Finding", "Support Devices")]
    abnormal = other_abnormality or any(result[n] in (POSITIVE, UNCERTAIN) for n in findings)
    result["No Finding"] = None if abnormal or not clauses else POSITIVE
    return {name: result.get(name) for name in wanted}


# Below this many reports one process is faster than starting others.
PARALLEL_FROM = 2_000


def label_reports(
    texts: Sequence[str | None],
    labels: Iterable[str] = CHEXPERT_LABELS,
    phrases: Mapping[str, Iterable[str]] | None = None,
    workers: int = 0,
) -> list[dict[str, int | None]]:
    """`label_report` for many reports, on `workers` processes (0: one per core), in order: the
    same output, byte for byte, as one process gives."""
    labels = list(labels)
    workers = workers or os.cpu_count() or 1
    label = partial(label_report, labels=labels, phrases=phrases)
    progress = {"total": len(texts), "desc": "label reports", "unit": "report", "leave": False}
    if workers == 1 or len(texts) < PARALLEL_FROM:
        return [label(text) for text in tqdm(texts, **progress)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        chunk = max(64, len(texts) // (workers * 16))
        return list(tqdm(pool.map(label, texts, chunksize=chunk), **progress))
