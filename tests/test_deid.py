"""De-identification of report text (`umcl/ingest/deid/`) through the ingestion text path.

The corpus (`benchmarks/phi_corpus.jsonl`, with its reviewer-style tuning section) is read by a
real `format: csv` source, so each text goes through `to_rows` →
`scrub_text(findings_and_impression(text), identifiers)`. The hostile set below is not in the
corpus: other names, institutions, formats and clinical wording, to catch a scrubber fitted to
the corpus (the first two thirds were written before fixes that they prompted; the last third,
from "relayed to Dr. Benedetta", was held out and passed as is). The second held-out set,
`benchmarks/phi_heldout.jsonl`, was written after the review's fixes and never tuned on: it is
below the standard, and its test only guards against getting worse than its first score.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from umcl.config import CsvColumns, SourceSettings
from umcl.ingest.deid import find_phi, ner_model, scrub_text
from umcl.ingest.pseudonyms import Pseudonymizer
from umcl.ingest.reports import findings_and_impression
from umcl.ingest.sources import read_source
from umcl.labels import LabelSpace

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("deid_benchmark", REPO / "benchmarks/deid.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

HOSTILE = [
    (
        "Case discussed with Dr. Ferreira-Lopes (thoracic surgery) at 09:40.",
        ["Ferreira-Lopes"],
        ["thoracic surgery"],
    ),
    (
        "Findings telephoned to Dr. Anneliese Brandt-Kowalczyk.",
        ["Anneliese", "Brandt-Kowalczyk"],
        [],
    ),
    ("The results were communicated to Fernando, the night nurse.", ["Fernando"], []),
    ("Radiologist: HOLLOWAY, PRIYA R", ["HOLLOWAY", "PRIYA"], []),
    ("Read by: tnakamura", ["tnakamura"], []),
    (
        "Signed electronically by Bartholomew Quist, MD on 2/3/2022.",
        ["Bartholomew", "Quist", "2/3/2022"],
        [],
    ),
    ("Patient: Zhao Ling", ["Zhao Ling"], []),
    ("Called Mrs. Abimbola Adeyinka at home with the result.", ["Abimbola", "Adeyinka"], []),
    (
        "Spoke with the patient's granddaughter, Keisha, who will bring her back tomorrow.",
        ["Keisha"],
        [],
    ),
    ("HENDRICKS^MAE^L", ["HENDRICKS", "MAE"], []),
    (
        "Results discussed with Haruto at 3 pm; he will arrange a CT.",
        ["Haruto"],
        ["he will arrange a CT"],
    ),
    ("Dictating physician: Ines Carvalho", ["Ines Carvalho"], []),
    ("Per Dr Thistlewood the line may be used.", ["Thistlewood"], ["the line may be used"]),
    ("Attending radiologist Svetlana Morozova, MD, agrees.", ["Svetlana", "Morozova"], []),
    ("Compared to 7/04/19, the opacity has cleared.", ["7/04/19"], ["the opacity has cleared"]),
    ("Prior study from 2022.05.06 is similar.", ["2022.05.06"], []),
    (
        "Radiograph dated 6 May 2022 demonstrates a small effusion.",
        ["6 May 2022"],
        ["demonstrates a small effusion"],
    ),
    ("Seen on Tuesday 6th May in the ED.", ["6th May"], []),
    ("Line was placed May 6th and remains in position.", ["May 6th"], ["remains in position"]),
    (
        "The prior from 05-06-2022 10:15 shows the same nodule.",
        ["05-06-2022"],
        ["shows the same nodule"],
    ),
    ("Scan date 06MAY2022.", ["06MAY2022"], []),
    ("Exam of 06-May-22 reviewed.", ["06-May-22"], []),
    ("Outside CT 12th March, 2022.", ["12th March, 2022"], []),
    ("Portable film obtained Mar. 3rd after intubation.", ["Mar. 3rd"], ["after intubation"]),
    ("Birthdate 1929/12/01.", ["1929/12/01"], []),
    ("A 95-yo man with sepsis.", ["95-yo"], ["with sepsis"]),
    ("92 y.o. female with cough.", ["92 y.o."], ["female with cough"]),
    ("Age 101, fall.", ["Age 101"], []),
    ("History: 93M, hypoxic.", ["93M"], []),
    ("Please page the fellow at 617 555 0111.", ["617 555 0111"], []),
    ("Contact our Sydney office on +61 2 9515 6111.", ["+61 2 9515 6111"], []),
    ("Reading room x5-6789.", ["x5-6789"], []),
    ("Beeper #4417 for questions.", ["4417"], []),
    ("Call 617/555-0143 to schedule.", ["617/555-0143"], []),
    ("Fax no: (212) 555 0109", ["(212) 555 0109"], []),
    ("Questions to mchen@partners.org please.", ["mchen@partners.org"], []),
    ("Images: https://mychart.example.com/visit/98213", ["mychart.example.com/visit/98213"], []),
    ("Archived on ehr.stlukes.local for 7 years.", ["ehr.stlukes.local"], []),
    ("Sent from 10.0.0.254 on the east campus.", ["10.0.0.254"], []),
    ("MRN#: 00223344", ["00223344"], []),
    ("EMPI 100223344 matched.", ["100223344"], []),
    ("Patient identifier Q123987 on the label.", ["Q123987"], []),
    ("Acc: 99812 No acute disease.", ["99812"], ["No acute disease."]),
    ("SSN 321-54-9876 was on the old requisition.", ["321-54-9876"], []),
    ("Humana ID H99887766.", ["H99887766"], []),
    ("Policy #: 7712-993", ["7712-993"], []),
    ("Acct No. 883-221-09.", ["883-221-09"], []),
    ("Model 5076 lead; Serial PJN123456.", ["PJN123456"], []),
    ("DL# D1234567 scanned at registration.", ["D1234567"], []),
    ("NPI: 1992837465", ["1992837465"], []),
    ("Outside films from Lahey Clinic were reviewed.", ["Lahey Clinic"], []),
    ("Transferred from Tufts Medical Center overnight.", ["Tufts Medical Center"], []),
    ("Previously followed at Sutter Health.", ["Sutter Health"], []),
    ("Prior imaging at Hospital Universitario La Paz.", ["Universitario La Paz"], []),
    ("CT from Mount Sinai Queens is not available.", ["Mount Sinai Queens"], []),
    (
        "Lives at 45 Beacon Hill Rd, Apt 2, Wellesley, MA 02481.",
        ["45 Beacon Hill Rd", "Wellesley", "02481"],
        [],
    ),
    ("Resides in Tucson with her son.", ["Tucson"], []),
    ("Home: 9 Kingfisher Close, Bristol BS8 1TH", ["9 Kingfisher Close", "Bristol", "BS8 1TH"], []),
    (
        "MRN: 4412093. Port catheter tip at the cavoatrial junction.",
        ["4412093"],
        ["Port catheter tip at the cavoatrial junction."],
    ),
    (
        "Accession: 55-2291-0. Mild bibasilar atelectasis.",
        ["55-2291-0"],
        ["Mild bibasilar atelectasis."],
    ),
    (
        "Patient: ABERNETHY, CLIVE\nFINDINGS: No acute process.\nIMPRESSION: Normal chest.",
        ["ABERNETHY", "CLIVE"],
        ["No acute process."],
    ),
    ("Discussed with Dr. White in person.", ["White"], []),
    ("Results given to Dr Young on the ward round.", ["Young"], []),
    ("Interpreted by John Small, MD.", ["John Small"], []),
    ("Findings communicated to Mariana Costa at 16:20 by phone.", ["Mariana Costa"], []),
    (
        "Reviewed with radiology fellow Dr. Oluwadamilare Ogunleye.",
        ["Oluwadamilare", "Ogunleye"],
        [],
    ),
    ("Verbal notification to nurse practitioner Gwendolyn Marsh.", ["Gwendolyn", "Marsh"], []),
    ("Patient Name: LI, WEI", ["LI, WEI"], []),
    ("PATIENT: NAKASHIMA^KENJI^^^", ["NAKASHIMA", "KENJI"], []),
    ("Ordering: Bhattacharya, Anirban MD", ["Bhattacharya", "Anirban"], []),
    ("Reported by: Prof. A. Lindqvist-Berg", ["Lindqvist-Berg"], []),
    ("Transcribed by: kpatel", ["kpatel"], []),
    ("Discussed with the patient's wife Ingrid.", ["Ingrid"], []),
    ("Mr Obi was too unwell to stand; AP view only.", ["Obi"], ["AP view only"]),
    (
        "Teodora Vasquez-Ibarra, the patient, declined the lateral view.",
        ["Teodora", "Vasquez-Ibarra"],
        [],
    ),
    ("Findings discussed with Rahul (medical registrar).", ["Rahul"], []),
    ("Date of exam: 12/5/2023", ["12/5/2023"], []),
    ("Prior: 2023-05-12 09:13:44.", ["2023-05-12 09:13:44"], []),
    ("on 5-12-23, a small effusion was present.", ["5-12-23"], []),
    ("Last imaged in Feb. 2021 at another facility.", ["Feb. 2021"], []),
    ("Baseline CT from 3rd January 2020.", ["3rd January 2020"], []),
    ("Follow-up on 12th Dec.", ["12th Dec"], []),
    ("Birth date 1932.03.09", ["1932.03.09"], []),
    ("Admitted on Sep 9, 2021 at 11:45 PM.", ["Sep 9, 2021"], []),
    ("Age 97 years, frail.", ["97 years"], []),
    ("Clinical: 90yo woman, fall.", ["90yo"], []),
    ("This is a ninety-two year old man.", ["ninety-two"], []),
    ("Ph: 617.555.0120 ext 331", ["617.555.0120", "331"], []),
    ("Cell (781) 555-0155.", ["(781) 555-0155"], []),
    ("Pager 555-3121.", ["555-3121"], []),
    ("Fax 1 800 555 0175", ["1 800 555 0175"], []),
    ("Email the report to dr.okafor@stmarys-health.org.", ["dr.okafor@stmarys-health.org"], []),
    ("See http://intranet/radiology/case/77123 for key images.", ["77123"], []),
    ("PACS server 192.168.40.12 was down.", ["192.168.40.12"], []),
    ("MRN 0012-3344", ["0012-3344"], []),
    ("Unit number: 3308812", ["3308812"], []),
    ("Accession No.: RX2023-00991", ["RX2023-00991"], []),
    ("ACC#44512 chest 1 view", ["44512"], []),
    ("Social Security: 604 22 1987", ["604 22 1987"], []),
    ("Insurance ID: ZQW847193022", ["ZQW847193022"], []),
    ("Medicare number 1AB2-CD3-EF45", ["1AB2-CD3-EF45"], []),
    ("Account No 45-9981-22", ["45-9981-22"], []),
    ("Encounter 88127734", ["88127734"], []),
    ("Pacemaker model Accolade, serial no. 112233A.", ["112233A"], []),
    ("Device serial number: MX-77X-4410", ["MX-77X-4410"], []),
    ("Licence no. 09876 (GMC).", ["09876"], []),
    ("DEA: FB9834561", ["FB9834561"], []),
    ("Previous films at Good Samaritan Hospital.", ["Good Samaritan Hospital"], []),
    ("Transferred from Vanderbilt University Medical Center.", ["Vanderbilt"], []),
    ("Seen at the Cleveland Clinic in 2019.", ["Cleveland Clinic"], []),
    ("Outside CT from Northwestern Memorial.", ["Northwestern"], []),
    ("Imaging performed at Mass General Brigham.", ["Mass General Brigham"], []),
    ("Referred from Shady Grove Adventist.", ["Shady Grove Adventist"], []),
    (
        "Address: 12 Harbour View Road, Mosman NSW 2088",
        ["12 Harbour View Road", "Mosman", "2088"],
        [],
    ),
    (
        "Patient lives at 88 Pine Ridge Ct., Durham, NC 27705.",
        ["88 Pine Ridge Ct.", "Durham", "27705"],
        [],
    ),
    ("Lives in Worcester with her daughter.", ["Worcester"], []),
    ("Originally from Lagos; travelled recently.", ["Lagos"], []),
    ("ZIP 60611", ["60611"], []),
    ("MRN: 5566778. Left lower lobe pneumonia.", ["5566778"], ["Left lower lobe pneumonia."]),
    ("ACCESSION: CXR-22-10045\nNo pneumothorax.", ["CXR-22-10045"], ["No pneumothorax."]),
    (
        "PATIENT: DOE, JANE  DOB: 01/02/1930\nIMPRESSION: Small left effusion.",
        ["DOE", "JANE", "01/02/1930"],
        ["Small left effusion."],
    ),
    (
        "Findings were relayed to Dr. Benedetta Rinaldi-Moss, who will follow up.",
        ["Benedetta", "Rinaldi-Moss"],
        ["who will follow up"],
    ),
    ("Critical finding: called to Dr. Kofi Mensah-Bonsu at 02:14.", ["Kofi", "Mensah-Bonsu"], []),
    ("Discussed with Ayodele in the emergency department.", ["Ayodele"], []),
    ("ED provider Sebastián Orozco was informed.", ["Sebastián", "Orozco"], []),
    ("I, Dr. Henrietta Okwu, have reviewed this study.", ["Henrietta", "Okwu"], []),
    ("Referring: PETROV, DMITRI A", ["PETROV", "DMITRI"], []),
    ("Pt: MCALLISTER^FIONA", ["MCALLISTER", "FIONA"], []),
    ("Study verified by hgarcia3 at the workstation.", ["hgarcia3"], []),
    ("Tech: bnovak", ["bnovak"], []),
    ("Cc: Dr Marguerite Lavoie (Respirology)", ["Marguerite", "Lavoie"], []),
    ("Her son Tobias was present during the examination.", ["Tobias"], []),
    ("Comparison: 4/17/2019 and 10/3/2020.", ["4/17/2019", "10/3/2020"], []),
    ("Compared with radiograph dated 17 April 2019.", ["17 April 2019"], []),
    ("Performed 2019-04-17 @ 0932.", ["2019-04-17"], []),
    ("Prior exam from April 17th showed a similar appearance.", ["April 17th"], []),
    ("Date: 17/04/19", ["17/04/19"], []),
    ("Last CT was in October 2018.", ["October 2018"], []),
    ("Indication: 104-year-old with hypoxia.", ["104-year-old"], ["with hypoxia"]),
    ("The patient is 96 years old and bedbound.", ["96 years old"], []),
    ("F 91y, breathless.", ["91y"], []),
    ("Call back on 0117 496 0123.", ["0117 496 0123"], []),
    ("Mobile 07700 900456", ["07700 900456"], []),
    ("Phone: 416-555-0188 x2231", ["416-555-0188", "2231"], []),
    ("Fax (902) 555-0161", ["(902) 555-0161"], []),
    ("Send queries to imaging.queries@halifaxhealth.ca", ["imaging.queries@halifaxhealth.ca"], []),
    ("Portal: https://results.example.net/p/ZX81", ["results.example.net/p/ZX81"], []),
    ("Router at 172.20.14.9 logged the transfer.", ["172.20.14.9"], []),
    ("Hospital number: K4455102", ["K4455102"], []),
    ("Acc no 7704412 (repeat).", ["7704412"], []),
    ("Medical record #: 66-18-4490", ["66-18-4490"], []),
    ("SSN: 214-66-0921", ["214-66-0921"], []),
    ("Member # JXP441902873", ["JXP441902873"], []),
    ("Acct 00981273", ["00981273"], []),
    ("ICD generator S/N RSK902231R.", ["RSK902231R"], []),
    ("License: RT-0099812", ["RT-0099812"], []),
    ("Outside study from St. Joseph's Regional Medical Center.", ["Joseph's"], []),
    ("Transferred from Harborview.", ["Harborview"], []),
    (
        "Films from Queen Elizabeth University Hospital reviewed.",
        ["Queen Elizabeth University Hospital"],
        [],
    ),
    (
        "Patient lives at 230 Willow Way, Boulder, CO 80302.",
        ["230 Willow Way", "Boulder", "80302"],
        [],
    ),
    ("Home address 5 Chestnut Terrace, Salem.", ["5 Chestnut Terrace", "Salem"], []),
    ("MRN:90011223 IMPRESSION: No acute abnormality.", ["90011223"], []),
    (
        "Accession#: A-77812 Findings: Right lower lobe opacity.",
        ["A-77812"],
        ["Right lower lobe opacity."],
    ),
]
HOSTILE_CLINICAL = [
    "Small bilateral effusions, right greater than left.",
    "Mildly displaced fracture of the right 4th and 5th ribs.",
    "Fractures of ribs 6-8 on the left.",
    "Ribs 3-4-5 show healing fractures.",
    "T7-8 disc space narrowing.",
    "Interval placement of a left-sided Pleurx catheter.",
    "Lungs: clear.",
    "Heart: normal size.",
    "Kerley A lines in the upper zones.",
    "Right-sided Hickman line.",
    "Harrington rods in the thoracolumbar spine.",
    "Schmorl nodes at T10 and T11.",
    "Appearances suggest Hodgkin lymphoma.",
    "CT PE study is negative.",
    "Lateral view: no effusion.",
    "Normal Chest X-Ray.",
    "Findings: Grossly Unremarkable.",
    "Pt is DNR/DNI.",
    "Vent settings: FiO2 40%, PEEP 5.",
    "SARS-CoV-2 pneumonia with bilateral ground-glass opacities.",
    "Blood pressure 140/90 noted on the requisition.",
    "Anterior osteophytes at C5-6 and C6-7.",
    "Nodule measures 12 x 9 mm (series 3, image 45).",
    "DLP 345 mGy-cm.",
    "Bone age consistent with 9 years.",
    "AP portable semi-upright view at 06:12.",
    "Examination: Chest PA/Lat.",
    "Comparison: CT 2 days prior.",
    "Mediport catheter tip in the SVC.",
    "Left Port-a-Cath in place.",
    "Dual-lead AICD (Boston Scientific) in place.",
    "Luftsichel sign of left upper lobe collapse.",
    "Scimitar vein draining to the IVC.",
    "Mounier-Kuhn syndrome with tracheobronchomegaly.",
    "Swyer-James syndrome with a hyperlucent left lung.",
    "Pectus carinatum.",
    "Azygoesophageal recess is preserved.",
    "Aortopulmonary window is clear.",
    "The Dobhoff is coiled in the esophagus.",
    "Status post Nissen fundoplication.",
    "Ivor Lewis esophagectomy changes.",
    "Bilateral apical pleural thickening, unchanged since 2015.",
    "Widened mediastinum, 9 cm at the level of the aortic knob.",
    "PICC tip 3 cm below the carina.",
    "Recommend CT in 3-6 months per Fleischner 2017 guidelines.",
    "Impression: No interval change.",
    "Findings discussed with the ICU team.",
    "Wet read: no pneumothorax.",
    "Thoracic aorta measures 4.1 cm.",
    "Lines and tubes as above.",
    "Heart size is normal. No focal airspace disease.",
    "Right basilar atelectasis versus infiltrate.",
    "Sternal wires and mediastinal clips from prior CABG.",
    "Old healed left clavicle fracture.",
    "Bilateral hilar adenopathy, consistent with sarcoid.",
    "Pleural plaques from prior asbestos exposure.",
    "Chronic interstitial markings, unchanged.",
    "Left IJ catheter with tip in the brachiocephalic vein.",
    "A 2.3 cm right paratracheal mass.",
    "Hyperexpanded lungs; flattened diaphragms.",
    "Pulmonary vascular redistribution suggests early failure.",
    "Minimal blunting of the left costophrenic angle.",
    "Endotracheal tube tip 3.5 cm above the carina.",
    "Degenerative changes at T9-T10 and T10-T11.",
    "Compression fracture of L1 with 30% height loss.",
    "A small calcified granuloma in the right upper lobe.",
    "Cardiac silhouette is top normal.",
    "No free subdiaphragmatic air.",
    "Mild cardiomegaly. Clear lungs.",
    "Airspace opacity in the lingula.",
    "Chest tube removed, no pneumothorax.",
    "Trace right pleural effusion.",
    "Post-surgical changes of right thoracotomy.",
    "Prominent epicardial fat pad.",
    "Azygos lobe.",
    "Cervical rib on the right.",
    "Bifid anterior right 4th rib.",
    "Surgical anchors in the right humeral head.",
    "Left humeral head prosthesis.",
    "Multiple EKG leads overlie the chest.",
    "The heart is mildly enlarged and the aorta is unfolded.",
    "Subsegmental atelectasis at the right base.",
    "Fluid in the minor fissure.",
    "The left hemidiaphragm is obscured.",
    "Paratracheal stripe is normal.",
    "Mild thoracic dextroscoliosis.",
    "Scattered calcified lymph nodes.",
    "Probable small hiatal hernia.",
    "Apical pleural-parenchymal scarring.",
    "Right upper lobe collapse with Golden S sign.",
    "Port catheter tip at the SVC-RA junction.",
    "Feeding tube in the duodenum.",
    "Interval removal of the right IJ line.",
    "New 9 mm nodule in the left upper lobe.",
    "Lobulated mass in the aortopulmonary window.",
    "Tracheal deviation to the right.",
    "Moderate hiatal hernia with an air-fluid level.",
    "Biapical pleural thickening.",
    "Median sternotomy and CABG clips.",
    "Bronchial wall thickening suggesting bronchitis.",
    "Patchy left retrocardiac opacity.",
    "Increased interstitial markings bilaterally.",
    "Stable appearance of the right hilum.",
    "Mild bronchial wall thickening.",
    "Large hiatus hernia.",
    "Nasogastric tube tip in the gastric fundus.",
    "Healed fractures of the left 7th and 8th ribs.",
    "Right 6-7-8 rib fractures, healing.",
    "Wedge compression of T12.",
    "Normal appearances of the thoracic spine.",
    "Lung apices are clear.",
    "Left basal consolidation with air bronchograms.",
    "Swan Ganz catheter in the right pulmonary artery.",
    "Heart and mediastinum within normal limits.",
    "Pneumoperitoneum under both hemidiaphragms.",
    "Bilateral perihilar airspace shadowing.",
    "Subcutaneous emphysema in the left chest wall.",
    "Nodular opacity 8 x 6 mm in the right midzone.",
    "Elevated right hemidiaphragm with subsegmental atelectasis.",
    "No radiographic evidence of active tuberculosis.",
    "Small left apical pneumothorax, 1.5 cm rim.",
    "Consider CT thorax for further assessment.",
    "Cardiothoracic ratio 0.6.",
    "Cavitating lesion in the left upper zone.",
    "Tracheostomy in situ.",
    "Right sided IJ CVC tip in the SVC.",
    "Sternotomy wires, two of which are fractured.",
    "Hickman line tip in the right atrium.",
    "Mitral valve replacement.",
    "Widespread bony metastases.",
]


def ingest(tmp_path: Path, entries: list[dict]) -> list[str | None]:
    """Texts as a `format: csv` source ingests them, known identifiers in RIS columns."""
    known = max((len(e.get("known_identifiers", [])) for e in entries), default=0)
    path = tmp_path / "ris.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "report", *(f"known{i}" for i in range(known))])
        for i, entry in enumerate(entries):
            ids = entry.get("known_identifiers", [])
            writer.writerow([f"r{i}", entry["text"], *ids, *[""] * (known - len(ids))])
    columns = CsvColumns(id="id", text=["report"], identifiers=[f"known{i}" for i in range(known)])
    source = SourceSettings(name="ris", kind="text_label", format="csv", path=path, columns=columns)
    rows = read_source(source, LabelSpace(), Pseudonymizer("a-test-key-of-some-length")).rows
    return rows["text"].to_list()


def test_corpus_meets_the_standard_through_a_csv_source(tmp_path):
    """Recall >= 0.99 for every identifier kind, <= 2 % of clinical sentences changed, and the
    clinical text of identifier sentences kept."""
    corpus = bench.load_corpus(REPO / "benchmarks/phi_corpus.jsonl")
    outputs = ingest(tmp_path, corpus)
    ordinary = bench.ordinary_words(corpus)
    per_kind: dict[str, list[bool]] = {}
    leaks, changed, lost = [], [], []
    for entry, out in zip(corpus, outputs, strict=True):
        out = out or ""
        for identifier in entry["identifiers"]:
            ok = bench.caught(identifier["text"], out, ordinary, entry["text"], identifier["kind"])
            per_kind.setdefault(identifier["kind"], []).append(ok)
            if not ok:
                leaks.append((identifier["text"], out))
        if not entry["identifiers"] and " ".join(out.split()) != " ".join(entry["text"].split()):
            changed.append((entry["text"], out))
        lost += [(keep, out) for keep in entry.get("keep", []) if keep not in out]
    assert len(per_kind) >= 18 and sum(map(len, per_kind.values())) >= 250
    recall = {kind: sum(oks) / len(oks) for kind, oks in per_kind.items()}
    assert min(recall.values()) >= 0.99, (recall, leaks)
    clinical = sum(1 for e in corpus if not e["identifiers"])
    assert clinical >= 100 and len(changed) / clinical <= 0.02, changed
    assert not lost, lost


@pytest.mark.parametrize(
    "sentence",
    [
        "Healing fractures of the right 9-10-11 ribs laterally.",
        "MR Imaging of the thoracic spine is recommended.",
        "DR Portable AP upright view of the chest.",
        "Kerley B lines and a Swan-Ganz catheter; Hampton hump and Westermark sign.",
        "Mild compression deformity of T4; disc narrowing at L1-L2 and T10-T11; C7 intact.",
        "A 3.2 x 2.1 cm mass; 5 mm nodule; 2 views; PA and lateral; Comparison: none.",
        "67-year-old man with cough; Port-A-Cath and NG tube in place.",
    ],
)
def test_clinical_wording_survives(sentence):
    assert scrub_text(findings_and_impression(sentence)) == sentence


@pytest.mark.parametrize(
    ("report", "secret", "clinical"),
    [
        ("MRN: 1234567. Large right pleural effusion.", "1234567", "Large right pleural effusion."),
        (
            "ACCESSION: ACC7712093\nSmall left apical pneumothorax.",
            "ACC7712093",
            "Small left apical pneumothorax.",
        ),
        ("PATIENT: DOE^JANE\nDOB: 01/02/1930\nNo acute disease.", "DOE", "No acute disease."),
    ],
)
def test_identifier_fields_do_not_swallow_clinical_text(report, secret, clinical):
    clean = scrub_text(findings_and_impression(report))
    assert secret not in clean and clinical in clean


def test_findings_and_impression_sections():
    text = (
        "EXAMINATION: CHEST\nINDICATION: Cough.\nFINDINGS: Heart normal.\n\nIMPRESSION: 1. Normal."
    )
    assert findings_and_impression(text) == "Heart normal.\n1. Normal."
    assert findings_and_impression("Just narrative.") == "Just narrative."
    assert findings_and_impression("FINDINGS:\n\nIMPRESSION:\n") == ""  # empty sections stay empty
    assert (
        findings_and_impression("HISTORY: Cough.\nLungs clear.") == "HISTORY: Cough.\nLungs clear."
    )


def test_header_fields_dates_phones_and_titled_names_are_scrubbed():
    report = (
        "Patient: Harriet Blackwood  MRN: 4829371  DOB: 03/14/1952\n"
        "Accession: ACC12345678  Date: 2021-05-02\n"
        "FINDINGS: Small effusion. Discussed with Dr. Ottilie Pemberton at (617) 555-0134 on March 4, 2021."
    )
    clean = scrub_text(report)
    for secret in (
        "Harriet",
        "Blackwood",
        "4829371",
        "03/14/1952",
        "ACC12345678",
        "2021-05-02",
        "Ottilie",
        "Pemberton",
        "555-0134",
        "March 4",
    ):
        assert secret not in clean, secret
    assert "Small effusion." in clean


def test_a_hospital_in_capitals_leaves_the_words_before_it() -> None:
    """A run of capitals with an institution's head word is the hospital only from after its
    last verb or preposition: the note's own words stay."""
    assert scrub_text("WAS SEEN BY BEACON HILL REHAB TODAY.") == "WAS SEEN BY [INSTITUTION] TODAY."
    assert "University of" not in scrub_text("Seen at the University of Michigan Hospital.")


def test_known_identifiers_are_removed_anywhere():
    clean = scrub_text(
        "Compared with prior study of Blackwood, no change. Harriet was told. Ref 7654321.",
        ["BLACKWOOD^HARRIET", "7654321"],
    )
    assert "Blackwood" not in clean and "Harriet" not in clean and "7654321" not in clean
    assert "no change" in clean
    assert (
        scrub_text("Oyelaran reports less pain.", ["OYELARAN^TUNDE"]) == "[NAME] reports less pain."
    )


def test_a_name_the_rules_found_is_removed_wherever_it_is_capitalised():
    clean = scrub_text("Discussed with Dr. Thistlewood. Thistlewood agreed; THISTLEWOOD's plan.")
    assert "thistlewood" not in clean.lower()
    # Lower-case words are ordinary words, and only the rules' names spread, not the NER's.
    assert (
        scrub_text("Discussed with Dr. Grade. Low grade fever.")
        == "Discussed with Dr. [NAME]. Low grade fever."
    )
    sentence = "Grade III pneumothorax. Low grade fever for 3 days."
    assert scrub_text(sentence) == sentence


def test_hostile_sentences_not_in_the_corpus():
    ordinary = bench.GENERIC | {
        t.lower()
        for text in HOSTILE_CLINICAL + [k for _, _, keep in HOSTILE for k in keep]
        for t in bench.TOKEN.findall(text)
    }
    leaks, lost = [], []
    for text, secrets, keep in HOSTILE:
        out = scrub_text(findings_and_impression(text))
        leaks += [(s, out) for s in secrets if not bench.caught(s, out, ordinary, text)]
        lost += [(k, out) for k in keep if k not in out]
    n = sum(len(secrets) for _, secrets, _ in HOSTILE)
    changed = [
        (t, o) for t in HOSTILE_CLINICAL if (o := scrub_text(findings_and_impression(t))) != t
    ]
    assert n >= 150 and 1 - len(leaks) / n >= 0.99, leaks
    assert len(changed) / len(HOSTILE_CLINICAL) <= 0.02, changed
    assert not lost, lost


def test_ner_finds_names_without_a_cue_and_skips_clinical_only_text():
    spans = find_phi("Dolores Whitfield reports a fall two days ago.")
    assert [(s.label, s.start, s.end) for s in spans] == [("NAME", 0, 17)]
    assert find_phi("Mild cardiomegaly. No effusion.") == []
    assert ner_model() is ner_model()  # loaded once per process


def test_ner_loads_offline_by_path():
    """A fresh process with every socket connection refused scrubs with the NER: no download,
    no hub look-up."""
    code = (
        "import socket\n"
        "def refuse(*args, **kwargs): raise OSError('network used')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse; socket.getaddrinfo = refuse\n"
        "from umcl.ingest.deid import scrub_text\n"
        "print(scrub_text('Gunnar Lindqvist came from Mount Sinai Queens.'))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert (
        "Gunnar" not in run.stdout and "Lindqvist" not in run.stdout and "Sinai" not in run.stdout
    )
    assert "network used" not in run.stderr


def test_corpus_format_is_documented_and_valid():
    corpus = [
        json.loads(line) for line in (REPO / "benchmarks/phi_corpus.jsonl").read_text().splitlines()
    ]
    for entry in corpus:
        assert set(entry) <= {"id", "text", "identifiers", "keep", "known_identifiers"}
        assert all(i["text"] in entry["text"] for i in entry["identifiers"])
    assert "known_identifiers" in bench.__doc__ and "identifiers" in bench.__doc__


def test_scoring_sees_short_leftovers():
    """Digits of any length and 1-2 letter name tokens left beside a label are leaks."""
    ordinary = set(bench.GENERIC)
    assert not bench.caught("93 y/o", "A 93 [AGE] man", ordinary, "A 93 y/o man", "age")
    assert not bench.caught("10/02/2023", "seen 10/02 [DATE]", ordinary, "seen 10/02/2023", "date")
    assert not bench.caught("Wu Li", "Prof. Wu [NAME]", ordinary, "Prof. Wu Li", "name")
    assert bench.caught("93 y/o", "A [AGE] man", ordinary, "A 93 y/o man", "age")
    # a number the text holds elsewhere may stay there
    assert bench.caught("Age 93", "[AGE]; 93 mm nodule", ordinary, "Age 93; 93 mm nodule", "age")


# --- issue 24's shapes and issue 27's real-note shapes (each by a general rule, not a lookup),
# run by the review tests below
STRUCTURE_IDENTIFIERS = [
    ("pt name: zielinska, malgorzata k", ["zielinska", "malgorzata"]),
    ("SURNAME FORENAME: MOREAU JULIEN", ["MOREAU", "JULIEN"]),
    ("Name: CHEUNG Wai Kit, referred by the GOPC.", ["CHEUNG", "Wai", "Kit"]),
    ("PT: LOPEZ-DIAZ, MARIA DE LAS NIEVES   MRN: 7654321", ["LOPEZ", "NIEVES", "LAS"]),
    ("Pt LINDQVIST, PER-OLOF | Ref Dr Hale", ["LINDQVIST", "PER-OLOF"]),
    ("daughter is mrs. rosalie whitcombe, hcp.", ["rosalie", "whitcombe"]),
    ("pt's son darnell at bedside, updated.", ["darnell"]),
    ("irene castellano, rn", ["irene", "castellano"]),
    ("E. KOWALCZYK AWARE OF K 5.9", ["KOWALCZYK"]),
    ("plan d/w Dr.Okonjo at 1400", ["Okonjo"]),
    ("PER DR TALBOTT THE PLAN IS UNCHANGED", ["TALBOTT"]),
    ("Prelim by resident pnakamura; final read by Dr. Hale.", ["pnakamura"]),
    ("Seen in chest clinic on the 14th; now breathless.", ["14th"]),
    ("For review at the 4/22 thoracic MDT.", ["4/22"]),
    ("COMPARISON: 11/03 portable.", ["11/03"]),
    ("Admitted 12/24, intubated 12/26 for hypoxia.", ["12/24", "12/26"]),
    ("stent to the RCA 12/82, reoccluded in 12/83", ["12/82", "12/83"]),
    ("lives in owings mills with husband.", ["owings"]),
    ("Outside CT from NWMC uploaded to PACS.", ["NWMC"]),
    ("ADMITTED FROM UNION HOSP. FOR UNSTABLE ANGINA", ["UNION"]),
    ("Domicile : 5 rue Victor Hugo, 69003 Lyon", ["69003", "Lyon"]),
    ("Residenza: Via Garibaldi 12, 20121 Milano", ["Garibaldi", "20121", "Milano"]),
    ("Car park: vehicle registration BD51 SMR logged.", ["BD51"]),
    # facilities before their head word and wards by their number, in any case
    ("transferred to st lucy memorial tonight", ["lucy", "memorial"]),
    ("to go to good hope hospital this pm", ["good", "hope"]),
    ("BACK TO FENWICK 4 WHEN BED AVAILABLE; FENWICK4 AWARE.", ["FENWICK"]),
    # dates headed as a shift, a month with "of", month/day after "for" or "in"
    ("Nursing note | 14 Feb, 91 0700-1900", ["14", "Feb", "91"]),
    ("nursing note\n3->4 jan, 02\n1900-0700", ["3->4", "jan", "02"]),
    ("Seen in april of 2019 in clinic.", ["april", "2019"]),
    # staff after "per" or their role, and a given name before a name the rules found
    ("weaning per tobias rendell overnight", ["tobias", "rendell"]),
    ("K REPLETED PER MD OYELARAN.", ["OYELARAN"]),
    ("AS PER J. WOZNIAK-PT TO BE TURNED Q2H", ["WOZNIAK"]),
    ("RT NOTE: JARED HARTWELL RRT", ["JARED", "HARTWELL"]),
    # a census given name and surname after a cue, a short given name in capitals
    ("WILL SPEAK WITH ROSALIND KETTERING RE DISPO.", ["ROSALIND", "KETTERING"]),
    ("PLAN D/W JOHN WHITAKER, PT AWARE", ["JOHN", "WHITAKER"]),
    # a month/day beside the study or sample it dates
    ("11/23 CXR SHOWED NEW RLL INFILTRATE", ["11/23"]),
    ("sputum cx 9/30 pending; cultures 10/2 NGTD", ["9/30", "10/2"]),
    # where a patient lives, in any case
    ("LIVES IN CATONSVILLE WITH DAUGHTER", ["CATONSVILLE"]),
    ("lives alone in ellicott city", ["ellicott"]),
    ("SOCIAL: LIVES WITH WIFE AND SON IN TOWSON.", ["TOWSON"]),
    # capitals before a post-nominal, a relation and a given name between commas
    ("LINE OK TO USE PER GIDEON MARKOWSKI NP", ["GIDEON", "MARKOWSKI"]),
    ("Family: Daughter, Jo, updated by phone.", ["Jo"]),
    ("1 dtr rosalba speaks english", ["rosalba"]),
    ("Family at bedside. Bernadette is family contact.", ["Bernadette"]),
    ("Desmond, her son, called twice overnight.", ["Desmond"]),
    # a place's head word after it, dates after intubation
    ("Evaluated by Frederick Rehab for placement.", ["Frederick", "Rehab"]),
    ("extub 6/14, reintub 6/15", ["6/14", "6/15"]),
    ("(head ct 11/20 neg)", ["11/20"]),
    # a phone's extension written onto it or after a colon; a culture's date, not its bottles
    ("Call back at (443)555-0192x31 after rounds.", ["443", "0192", "31"]),
    ("Pager 410-555-0148, ext: 2207", ["0148", "2207"]),
    ("ucx 3/9 neg, bcx 11/18 pending", ["3/9", "11/18"]),
    # sign-off lines: initials parted by a colon or anywhere in a dictation line, handles after
    # "signed off by", "verified electronically by:", both ends of a read-back
    ("Final report transcribed 0815 / RBW:tk", ["RBW", "tk"]),
    ("Dictated by Dr Ames and typed LM/qs on the ward.", ["LM/qs"]),
    ("Addendum JW/dp: measurements corrected.", ["JW/dp"]),
    ("Study signed off by kfarouk before noon.", ["kfarouk"]),
    ("Approved electronically by: tdelacroix", ["tdelacroix"]),
    ("Critical finding read back by RN lmbeki to hwestover, 0210.", ["lmbeki", "hwestover"]),
    # header lines, family-name-first orders, staff in capitals after their role, Dutch titles
    ("re: wojciechowski, bartosz m - chest pa/lat", ["wojciechowski", "bartosz"]),
    ("PATIENT LABEL  OYELOWO KENNETH  M  UNIT NO 5541203", ["OYELOWO", "KENNETH"]),
    ("Client: MBEKI-DLAMINI, THANDIWE NOMSA", ["MBEKI", "THANDIWE", "NOMSA"]),
    ("Interpreter booked for Tran Thi Huong and her husband.", ["Tran", "Huong"]),
    ("BED 4: HOANG VAN PHUC, DAY 2 POST-OP", ["HOANG", "PHUC"]),
    ("LINES CHECKED WITH CHARGE NURSE ZANELE MOKOENA AT 2200", ["ZANELE", "MOKOENA"]),
    ("Verwezen door mevr. K. van der Berg-Smit.", ["Berg-Smit"]),
    # day.month. without a year, an ordinal after "for the", a day by its name
    ("Re-admitted 03.11. with fever.", ["03.11"]),
    ("Listed for the 19th for bronchoscopy.", ["19th"]),
    ("Symptoms began on Bastille Day; fell on St Brigid's Day.", ["Bastille", "Brigid"]),
    ("NGUYEN VAN AN AT BEDSIDE", ["NGUYEN", " AN "]),
    ("re: brown, david - chest x-ray", ["brown", "david"]),
    ("LINES FLUSHED BY NURSE KAREN LEE, NO CONCERNS", ["KAREN", "LEE"]),
    ("Relayed to sister ms. o'donoghue-price by phone.", ["donoghue"]),
    # a town before its region's code, ages in years and months or after a bracketed sex
    ("Films couriered from Toowoomba, QLD.", ["Toowoomba"]),
    ("97y4m male, confusion.", ["97y4m"]),
    ("(F) 94 presenting with a fall.", ["94"]),
    # a DICOM dump's institution keyword, hospitals' abbreviations after "requested from"
    ("(0008,0080) InstitutionName: ALDERWOOD COMMUNITY", ["ALDERWOOD"]),
    ("Old films requested from SVMC and CRH.", ["SVMC", "CRH"]),
    # a relation and a name closing the sentence
    ("Consent witnessed by her nephew, Tendai.", ["Tendai"]),
    # hospitals named in common words, without a head word or with one after a verb in capitals
    ("Discharged to Good Samaritan rehab on Friday.", ["Samaritan"]),
    ("PLAN: TRANSFER TO HOLY FAMILY WHEN BED AVAILABLE", ["HOLY", "FAMILY"]),
    ("records faxed from Our Lady of Lourdes", ["Lourdes"]),
    ("moved to a bed on riverbend campus overnight", ["riverbend"]),
    # names with no cue that only a person's name spells; a given name before a middle initial
    ("LINES CHANGED BY B. HARGREAVES THIS AM", ["HARGREAVES"]),
    ("ROSALIND PEMBERTON FROM CASE MANAGEMENT CALLED", ["ROSALIND", "PEMBERTON"]),
    ("spoke w/ gwendolyn ashcroft re: placement", ["gwendolyn", "ashcroft"]),
    ("\nDON R. WHITFIELD, RRT\n", ["DON", "WHITFIELD"]),
    # two-digit years by their apostrophe, years said with what happened in them
    ("PMH: HTN, CABG x3 '04, AAA repair '11.", ["04", "11"]),
    ("cocaine last used in june 09'; etoh daily", ["june", "09"]),
    ("Hx lung ca s/p lobectomy 1986; knows it is 2024.", ["1986", "2024"]),
    ("NO GROWTH SO FAR FROM 9/27 CULTURES.", ["9/27"]),
    # an age opening a line before its history
    ("Admission note\n96 s/p fall with L hip fx, on coumadin", ["96"]),
    # whose home, who is addressed, which member of staff was told or came from a service, an
    # initial after a title alone, an employer
    ("found confused at winifred okafor's house this am", ["winifred", "okafor"]),
    ("STAYING AT MARGUERITE'S APARTMENT", ["MARGUERITE"]),
    ('pt keeps repeating "Siobhan, where is my bag"', ["Siobhan"]),
    ("HR to 130s, RN deborah notified, lopressor given", ["deborah"]),
    ("K 6.1, RESIDENT KEVIN AT BEDSIDE", ["KEVIN"]),
    ("eval by bernadette ogunwale from speech this am", ["bernadette", "ogunwale"]),
    ("DIRECTLY WITH MRS T. ABOUT GOALS", ["T."]),
    ("WIFE IS A MANAGER AT LOCKHEED MARTIN.", ["LOCKHEED", "MARTIN"]),
    # who opens a sentence before what people do, a member of staff between their role and
    # what they did, a surname in capitals before its forename, a relative after a family word
    ("Dolores slept poorly, asking for her son.", ["Dolores"]),
    ("Kevin rang at 2100 to ask about his mother.", ["Kevin"]),
    ("Marguerite Ashworth requests a call back.", ["Marguerite", "Ashworth"]),
    ("K. RAJAGOPALAN PERFORMED THE ECHO.", ["RAJAGOPALAN"]),
    ("RRT Okonkwo-Bamidele suctioned and changed circuit.", ["Okonkwo", "Bamidele"]),
    ("wristband: HALVORSEN, Ingrid", ["HALVORSEN", "Ingrid"]),
    ("spoke with nephew Oluwadamilare at bedside", ["Oluwadamilare"]),
    ("granddaughter Tamsin called for an update", ["Tamsin"]),
    # a document's number, years of operations, a European postcode and town
    ("Progress note #58213 amended.", ["58213"]),
    ("PMH: thyroidectomy 1983, THR (L) 2009, CABG x3 1998.", ["1983", "2009", "1998"]),
    ("Lives at Kastanienallee 14, 10435 Berlin.", ["10435", "Berlin"]),
    ("Breast ca dx 2004; DM2 since 1987.", ["2004", "1987"]),
    ("- 97 female with fall at home", ["97"]),
    # a surname after its particles, a relation's nickname or bracket, a relation's name in
    # capitals, a field's initials, a note's author, an audit line's user, written dates, a
    # hospital by its initials, a saint's or another language's hospital, reference numbers
    ("SEEN BY DR K. VAN DEN BOSCH TODAY", ["BOSCH", "DEN"]),
    ("letter copied to dr farid bin hashim", ["farid", "hashim"]),
    ("Discussed with Dr. Lucia de la Fuente.", ["Lucia", "Fuente"]),
    ("Niece 'Dotty' brought his glasses.", ["Dotty"]),
    ("Plan agreed with Orla (daughter, NOK).", ["Orla"]),
    ("SON ANTHONY FERRANTE AT BEDSIDE, UPDATED.", ["ANTHONY", "FERRANTE"]),
    ("Sonographer: J.K.   Reporting: see below", ["J.K"]),
    ("REQUESTING PHYSICIAN: TAN BOON-KIAT, NUH A&E", ["TAN", "BOON", "KIAT"]),
    ("Progress note (jkowalczyk): afebrile overnight.", ["jkowalczyk"]),
    ("Report edited by user mfitzgerald3 at 14:02.", ["mfitzgerald3"]),
    ("last reviewed in clinic on 12 september", ["12 september"]),
    ("seen on the fourteenth of March for the same", ["fourteenth"]),
    ("Prior CT at SCGH showed no nodule.", ["SCGH"]),
    ("Outside films from st. columba's reviewed.", ["columba"]),
    ("discharged to krankenhaus lindenhof for rehab", ["lindenhof"]),
    ("Police ref 2219/44 attached to the request.", ["2219"]),
    ("Claim no. 31 552 908 pending.", ["31", "552", "908"]),
    # a reviewer's: who ordered a rate, and a visit to the ER on a day in August
    ("Heparin increased to 1200 units/hr per md saeed.", ["saeed"]),
    ("Sensitive to gentamicin, Ngozi Okafor in micro phoned the result.", ["Ngozi", "Okafor"]),
    ("Bed 4: Mrs Patel type 2 diabetic, for review.", ["Patel"]),
    ("Seen in ER 6/8 after fall.", ["6/8"]),
    # a weekday with its date, dates in other languages, a hospital word of another language, a
    # handle on social media
    ("Reviewed at the MDT on Tuesday 12th March.", ["Tuesday", "12th"]),
    ("Termin am 21. Oktober 2023 bei Dr. Brandt.", ["21.", "Oktober", "2023"]),
    ("Prochain contrôle le 9 janvier, Dr Lefèvre.", ["9 janvier"]),
    ("Eerdere MRI op 4 maart 2021 in het UMC Groningen.", ["4 maart", "Groningen"]),
    ("Family asked that photos posted as @mike.recovers2 be taken down.", ["mike.recovers2"]),
]
CASE_CLINICAL = [
    "BP 120/80, HR 88; given 1/2 NS; grade 2/6 murmur; 3/4 of the lung; T2/FLAIR; 2/3 strength.",
    "Power 4/5 in the left arm; pain 8/10; cpap 5/5 tolerated; F/U in 3/12; repeat in 6/52.",
    "Haller index of 3.6, consistent with pectus excavatum.",
    "Histoplasma capsulatum and Staph aureus; E. coli grown.",
    "History of Rocky Mountain spotted fever; West Nile virus serology negative.",
    "Read by consensus.",
    "Given lasix 40 mg and Coumadin held; propofol weaned.",
    "PT ALERT AND ORIENTED, LUNGS CLEAR, STARTED ON HEPARIN.",
    "Fracture of the 5th rib; on the 2nd cycle of chemotherapy.",
    "Paracentesis performed 2-3 times per week; obtained 3-4 views; on 2-4 liters.",
    "B. fragilis and E. faecalis grown; lesion at the porta hepatis; c7 1st rib.",
    "Wanted to leave hospital; returned to the hospital; sent to another hospital.",
    "Increased to levophed 2; changed to cpap 5; F/U in 2/7.",
    "Sedation per protocol; settings per flow sheet; md aware; Per Fleischner Society guidelines.",
    # look-alikes of the sign-off rules: views, ratios, histories, a read-back to a team
    "Dictated: AP/lat views of the chest; I:E ratio 1:2; FEV1:fvc 0.62.",
    "Addendum: PA/lat obtained; h/o COPD, c/o dyspnoea; s/p CABG.",
    "Result called to the ward, read back to team.",
    "Signed off by the team; read back by nursing staff.",
    # look-alikes of the header, family-first, staff, date, town and age rules
    "RE: CHEST PAIN, query PE. Re: left lower lobe collapse.",
    "Le Fort II fracture; ho chi minh bundle not seen.",
    "CHARGE NURSE AWARE OF PLAN; RESIDENT PAGED, FELLOW AWARE; PHYSIO CHEST PT DONE.",
    "Nodule 2.5 cm, on 12.50 mg; scan 1.10 mSv; on Hospital Day 3, Post-op Day 2, on Day 5.",
    "for the 2nd time, for the 3rd cycle; Chest, PA and lateral; Stable, OK.",
    "(F) 95 kg; (M) 92%; (L) 95 mm.",
    "Von Hippel-Lindau disease; Popliteal (Baker) cyst; St. Jude valve (St. Jude) in place.",
    "Cough 2/52, fever 3/7; bladder about 1/2 full; lives with son, Alert.",
    "Middle lobe collapse from nodal compression, in keeping with Brock syndrome.",
    # a reviewer's look-alikes of this session's rules (each changed by a first version of them)
    "ETT/ogt: secured at 22 cm at the lip. MAP/cvp: 65 and 8 after fluid bolus.",
    "Addendum to typed report: RUQ/epi tenderness has improved.",
    "Critical INR read back to ortho. Glucose 1.9 read back to triage. Result read back to sender.",
    "Report signed off by physio. Read back by RN taking the call.",
    "Results read back by charge nurse and verified.",
    "RE: HENOCH SCHONLEIN PURPURA. Plan: do Thu Echo.",
    "Heparin low mw. Enoxaparin given instead. Fluids: high mw Dextran 40 infused.",
    "Lactate on admission 2.10, now 1.05. Creatinine previous 1.02. Lactate prior 2.11; now 1.4.",
    "Referred for the 3rd and 4th toes buddy strapping; listed for the 2nd, 3rd and 4th ribs fixation.",
    "Planned for the 2nd stage revision. Anxious on Apheresis Day.",
    "Status: Mobile, OK to discharge. Catheter: Foley, DC today. Lines: Hickman, DC when afebrile.",
    "Pulse (M) 98 irregular, apex 110. Pressures obtained from RHC and LHC.",
    "Rash 3/7, itch 2/7. Headache 10/7, worse in mornings.",
    "NURSE WILL CALL MD IF SBP < 90; NURSE MAY CALL FAMILY. RE: HILL SACHS LESION.",
    "Lives with son, Alert. Accompanied by daughter; re: white cell count.",
    # a reviewer's look-alikes of the facility, ward, staff and shift-date rules
    "Pt transferred to MICU. Hospital course notable for AKI; on hospital day 5; clean hospital gown.",
    "Transferred to tertiary care hospital; seen in children's hospital; appt at outpatient medical center.",
    "Pt upset about going to son's memorial tomorrow.",
    "Progressed to Killip 3; white matter changes up to Fazekas 2; upgraded to Bosniak 3.",
    "Sedation per Richmond scale; turned per Braden protocol; mobilised per Hoyer lift; md cortrak placed.",
    "Switched to Glucerna 2 cartons; on Kinair 3 bed; speaking valve per passy muir.",
    "PEEP weaned 8 -> 5 dec, 10 min later.",
    "Blood cultures positive in 2/4 bottles; repeat bloods in 6/24.",
    # look-alikes of the cue, study-date and residence rules
    "Discussed with Heart Failure team; spoke with family about it; talked with ICU team.",
    "Cultures 2/4 bottles positive; BCx 1/2 sets pos; cx 2/4 pos; pain 8/10, CXR clear.",
    "Lives in a house with stairs; lives at home; LIVES IN ASSISTED LIVING.",
    "Plan per John Hopkins protocol.",
    "PT SEEN BY ICU NP; HEPARIN DRIP RN AWARE; ON CALL HOUSE OFFICER MD AWARE.",
    "Lives alone and walks in the park; lives with wife in a two story house in town.",
    "Sputum is thick; Hope is family's wish; this is the daughter's first visit.",
    # found by a reviewer of these rules: bottles before a culture word, devices before a
    # post-nominal, a kind of home, a title-cased cue word
    "2/4 blood cultures grew GPC; 1/2 UCx positive; cx 1/2 staph epi.",
    "PT ON HIFLOW VAPOTHERM, NP AWARE.",
    "Lives in uptown apartment; resides in a downtown condo.",
    "Patient Awake And Comfortable; Nil By Mouth.",
    # eponyms and organisms beside the name rules, "on" before a hospital day or diet
    "Mallory Weiss tear at the GE junction; E. FAECALIS and E. FAECIUM in urine.",
    "S. MALTOPHILIA AND K. OXYTOCA IN SPUTUM; Argyll Robertson pupils.",
    "Patient asked for the chaplain and a holy cross.",
    "ON HOSPITAL DAY 3, ON REGULAR HOSPITAL DIET.",
    "Lives on campus in student housing.",
    # look-alikes of this stop's rules: heights, minutes, volumes, times, counts, a reading
    # opening a line, possessives of relations, quoted speech, staff words, work words
    "Height 5'10\", reassess in 15'; UO in 2000 cc; s/p lasix 1930; born in 1950.",
    "Blood cultures 2/4 positive; 1/2 bottles grew GPC; bag 3/4 full.",
    "Sats:\n98 s/p neb, 100 w/ NRB",
    "Stays at her daughter's house; lives at the patient's home; at friend's apartment.",
    '"Help, I cannot breathe," patient said; "Nurse, my chest hurts."',
    "MD also aware; RN will be made aware; NP now aware; resident paged; RN DON AWARE OF FALL.",
    "Positive Homans sign; known Addison disease; works with PT daily; director of ICU.",
    "Aline dampened overnight; a-line re-zeroed.",
    # found by a reviewer of these rules in their first version
    "102 s/p tylenol\n115 s/p fluid bolus\nI/O in 2000 out 1500; s/p surgery EBL 1975 ml.",
    "Pt rates pain as '10 out of 10', '10+' on scale; ambulated may 50' with RW.",
    "Blood cx 2/8 bottles positive; node 2/18 positive; chamber 7/8 full.",
    "MS S. viridans endocarditis; severe MR E. coli UTI.",
    "Stays at the pastor's house; RETIRED FROM ARMY; WORKING WITH SPEECH.",
    "Allegra from pharmacy given; Flonase from pharmacy due.",
    # look-alikes of this stop's rules: services and devices before what people do, capitals
    # before a comma, British durations, amounts after a document or an operation
    "Pulm feels this is aspiration; Lab rang with K 6.2; Foley fell out.",
    "Patient slept well. Grace period noted. Everyone agreed.",
    "RT Adjusted vent. RN Foley placed. MD Team aware.",
    "IMPRESSION, Stable. LUNGS, Clear. HEART, Normal size.",
    "3/7 history of cough, 2/12 weight loss, 6/52 hx of fevers.",
    "Note 1500 mL output; report 2 of 3.",
    "surgery 2000 ml EBL; laparotomy 2015 then to PACU at 2130.",
    "NPO since 1930; no urine output since 2000. HR 95 male nurse at bedside.",
    # found by a reviewer of these rules in their first version: shift and ward words, kin words
    # before a verb, organisms and sides after an initial, signs and stains before a finding,
    # devices after a role, clock times after a note's title or an operation, homes by initials
    "Nocte slept well. Junior called re: fluids. Girlfriend rang the ward twice. Mum rang.",
    "P. falciparum present. L. knee examined. MISTY MESENTERY PRESENT.",
    "ROMBERG, Neg. YEAST, Scanty. SHILEY, Cuffed size 8.",
    "RN Mepilex changed. RT Hamilton adjusted. Resident Nightfloat aware.",
    "Nursing note 0700 pt stable. Verbal report 1415 to ward RN. Lap chole at 1945.",
    "Tx from NH. Xfer from BH unit. Surgery done 1950, pt to PACU.",
    # next to the shapes of this change: rates after "per", receptor scores, adjectives that are
    # names elsewhere, hormones and findings in initials after "at", a stage's "st", brackets
    # and quotes around clinical words, a lab's reference range
    "45 Gy in 25 fractions, 1.8 Gy per fraction; 40 mg per day.",
    "ER 7/8, PR 0/8 (Allred), HER2 2+.",
    "Frank pus from the drain; bright red bleeding PR.",
    "Repeat TSH at GP was normal; known LVH on echo.",
    "ST elevation in V2-V4; no st depression.",
    "Nursing note (cont): pt settled. Progress note (prn): analgesia given.",
    "Potassium 3.2 (ref 3.5-5.0), sodium 139.",
    # found by a reviewer of these rules in their first version
    "Consent (mother) obtained. Visit (wife) this afternoon. Deaf (partner), uses BSL.",
    'Daughter "Doesn\'t seem herself today". Son "Happy" for discharge.',
    "Nursing note (contd): settled. Dietetic note (nbm): plan PN if NBM > 5 days.",
    "CPAP user ResMed; login BadgerNet failed. Consultant: T.B.C.",
    "A fall in Hb by 20 may warrant transfusion; swelling since 2 may be related.",
    "MAY FIRST NEED CT HEAD. IV Aug second dose given.",
    "F/U at PAH clinic; follow-up MRI in IIH showed empty sella; transferred to DGH.",
    "Taking st john's wort. Referred to klinik kesihatan for BP monitoring.",
    "Platelet number 150 000/uL. SISTER ALPHA THALASSAEMIA TRAIT.",
    # scales and classifications named after places, drugs an organism resists, hourly care,
    # bedside scores out of 10, "@" before a place or a time
    "Bristol type 6 stool x2. Cambridge Prognostic Group 3. Edinburgh Postnatal Depression Scale 9.",
    "E. coli resistant to Tazocin and Septrin; sensitive to Meropenem.",
    "Repositioned 2/24 overnight, obs 4/24, AMTS 8/10, CTSI 4/10.",
    "d/c @home with family; BP 118/76 @rest; review @ 1400. Given 2 mars bars.",
    # found by a reviewer of this change: "@" as "at", other languages' months as clinical
    # words, kinds of clinic, initials ending in H, products after "user:", fractions of months
    "Disc protrusion @L5S1; temazepam 10 mg @nocte; on Airvo @Optiflow settings.",
    "AFB cultures x3: 2 MAI, 1 no growth. Hypo treated with 2 Mars. Swab count: 2 Mayo, correct.",
    "Referred to klinik desa; follow-up MRI in IDH mutant astrocytoma; reported to MOH.",
    "Insulin pump user: Omnipod. Login: BadgerNet unavailable.",
    "Nearly a fifth of May referrals; May the second dose be given early?",
]


@pytest.mark.parametrize(
    ("text", "secrets"),
    [
        ("Pt is 93, fall.", ["93"]),
        ("F/93, SOB.", ["93"]),
        ("93/F with cough.", ["93"]),
        ("M 95 SOB", ["95"]),
        ("Ms Ada Lovelace, 95, fall at home.", ["Ada", "Lovelace", "95"]),
        ("Age: 091Y", ["091Y"]),
        ("Dated 5-Mar-19, similar.", ["5-Mar-19", "Mar"]),
        ("Compared to CT of Christmas Day 2019.", ["Christmas", "2019"]),
        ("Born in 1928.", ["1928"]),
        ("YOB: 1930", ["1930"]),
        ("Son (Rahul) informed.", ["Rahul"]),
        ("Result phoned to Will Brown on the ward.", ["Will", "Brown"]),
        ("Signed by Okoro, Chidi", ["Okoro", "Chidi"]),
        ("Reported by J. Smith", ["J.", "Smith"]),
        ("Dictated: RJT/ab", ["RJT", "/ab"]),
        ("Typed by: kls", ["kls"]),
        ("Institution: ST MARY'S GENERAL", ["MARY"]),
        ("Postcode 2000; Sydney", ["2000", "Sydney"]),
        ("Address: 1 Rue de la Paix", ["Rue", "Paix"]),
        ("Medicare number 2123 45670 1", ["2123", "45670", " 1"]),
        ("Study UID 1.2.826.0.1.3680043.8.498.12345678901234567890", ["3680043", "498"]),
        *STRUCTURE_IDENTIFIERS,
    ],
)
def test_review_identifiers_are_removed(text, secrets):
    clean = scrub_text(findings_and_impression(text))
    assert not [s for s in secrets if s in clean], clean


@pytest.mark.parametrize(
    "sentence",
    [
        "Grade II/III splenic laceration.",
        "Old healed Koch's in the right upper zone.",
        "Bilateral hilar lymphadenopathy, likely sarcoid.",
        "Pott's spine at T10-T11.",
        "Calcified Ghon focus; Ranke complex.",
        "Sternal angle (angle of Louis) at T4/5.",
        "Baker's cyst in the popliteal fossa.",
        "Salter-Harris II fracture; Hill-Sachs lesion.",
        "Bence Jones proteinuria; Homer Wright rosettes.",
        "Swelling anterior to the Adam's apple.",
        "Hb 9.8 g/dL, Hgb 7.1, WBC 14.2.",
        "Grade III pneumothorax. Low grade fever for 3 days.",
        "SpO2 93% on room air; Pt is 95 kg.",
        *CASE_CLINICAL,
    ],
)
def test_review_clinical_wording_survives(sentence):
    assert scrub_text(findings_and_impression(sentence)) == sentence


@pytest.mark.parametrize(
    ("text", "known", "expected"),
    [
        ("1.2 x 3.4 cm nodule.", ["1"], "1.2 x 3.4 cm nodule."),
        ("Lesion of unknown significance.", ["Unknown"], "Lesion of unknown significance."),
        ("No change - stable.", ["-"], "No change - stable."),
        ("Na 132, K 4.1.", ["NA", "N/A"], "Na 132, K 4.1."),
        ("Clinical details not available.", ["NOT AVAILABLE", "000"], None),
        # A name part that is an ordinary word counts only where it stands as a name.
        ("Small left pleural effusion.", ["SMALL^JOHN"], None),
        (
            "Mr Small was seen; small effusion.",
            ["SMALL^JOHN"],
            "Mr [NAME] was seen; small effusion.",
        ),
        ("John Small attended.", ["SMALL^JOHN"], "[NAME] attended."),
        ("Discussed with Small.", ["SMALL^JOHN"], "Discussed with [NAME]."),
        ("Oyelaran reports less pain.", ["OYELARAN^TUNDE"], "[NAME] reports less pain."),
        (
            "Study 4412 reviewed; 4412.5 mm is not it.",
            ["4412"],
            "Study [ID] reviewed; 4412.5 mm is not it.",
        ),
    ],
)
def test_known_identifiers_skip_placeholders_and_ordinary_words(text, known, expected):
    assert scrub_text(text, known) == (text if expected is None else expected)


def test_heldout_set_is_scored_and_no_worse_than_its_first_score():
    """Written after the review's fixes, below the standard. Its first score (2026-11-29): recall
    0.814 of 102 identifiers, 16 of 130 clinical sentences changed; with the tagger (2026-12-06)
    0.824 and 2 of 130. This guards against regressions only."""
    heldout = bench.load_corpus(REPO / "benchmarks/phi_heldout.jsonl")
    for entry in heldout:
        assert set(entry) <= {"id", "text", "identifiers", "keep", "known_identifiers"}
        assert all(i["text"] in entry["text"] for i in entry["identifiers"])
    phi = [e for e in heldout if e["identifiers"]]
    assert len(phi) >= 60 and len(heldout) - len(phi) >= 100
    result = bench.score(bench.shipped(), heldout, bench.ordinary_words(heldout))
    assert result["recall_overall"] >= 0.80, result["misses"]
    assert result["clinical_changed"] <= 0.02, result["misses"]


def test_a_report_too_long_to_read_is_quarantined_and_the_others_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One report of 1.2 M characters (an unexplained capitalised word in it, which once sent
    it to spaCy past its length limit) is one quarantined record; the run goes on."""
    from umcl.cli import main

    huge = "Findings: Quetzalcoatlus seen. " + "The lungs are clear. " * 57_000
    assert len(huge) > 1_190_000
    texts = ["Findings: no pleural effusion.", huge, "Impression: mild cardiomegaly."]
    path = tmp_path / "ris.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "report"])
        writer.writerows([f"r{i}", text] for i, text in enumerate(texts))
    source = {
        "name": "ris",
        "kind": "text_label",
        "format": "csv",
        "path": str(path),
        "columns": {"id": "id", "text": ["report"]},
    }
    params = tmp_path / "params.yaml"
    # One bad record in three: over the default bad fraction a real export stays under.
    settings = {
        "demo": {"out": []},
        "data": {"sources": [source]},
        "validate": {"max_bad_fraction": 0.5},
    }
    params.write_text(json.dumps(settings))
    monkeypatch.setenv("UMCL_PSEUDONYM_KEY", "a-test-key-of-some-length")
    out = {name: tmp_path / name for name in ("validated", "quarantine", "locator")}
    code = main(
        [
            "--params",
            str(params),
            "validate",
            "--out",
            str(out["validated"]),
            "--quarantine",
            str(out["quarantine"]),
            "--locator",
            str(out["locator"]),
            "--metrics",
            str(tmp_path / "validation.json"),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "validation.json").read_text())["ris"]
    assert (report["rows_in"], report["rows_valid"], report["rows_quarantined"]) == (3, 2, 1)
    assert report["reasons"]["report_too_long"] == 1  # (and empty_text: no text was kept)
    valid = pl.read_parquet(out["validated"] / "ris.parquet")
    kept = " ".join(valid["text"].to_list())
    assert valid.height == 2 and "no pleural effusion" in kept and "mild cardiomegaly" in kept
    quarantined = pl.read_parquet(out["quarantine"] / "ris.parquet")
    assert quarantined["text"].to_list() == [None]  # an unread report is kept nowhere
    assert f"report_too_long: {len(huge.strip()):,} characters" in quarantined["reason"][0]
    assert "validate.max_report_chars" in quarantined["reason"][0]


def test_the_physionet_reader_places_every_annotated_span() -> None:
    """The gold corpus's offsets are into each note's text after its header line: every one of
    its 757 spans holds its own text (the reader refuses a span that does not)."""
    from tests.conftest import shared_path

    folder = shared_path("physionet-deid")
    from umcl.ingest.deid import physionet

    spec = importlib.util.spec_from_file_location(
        "deid_physionet", REPO / "benchmarks/deid_physionet.py"
    )
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    notes = physionet.read_corpus(folder)
    assert len(notes) == 1046 and len({n.patient for n in notes}) == 68
    assert sum(len(n.phi) for n in notes) == 757
    note = next(n for n in notes if n.phi)
    mask = benchmark.removed_mask(note.text, tagger=True)
    score = benchmark.score_note(note, mask)
    assert sum(total for _, total in score["caught"].values()) == len(note.phi)


def test_the_tagger_runs_offline_and_its_card_names_its_data() -> None:
    """The CRF loads from the package (no download), and the card beside it names its training
    data, licence and data hashes."""
    from umcl.ingest.deid import tagger

    assert tagger.MODEL_FILE.is_file() and tagger.MODEL_FILE.stat().st_size < 5_000_000
    card = (tagger.MODEL_DIR / "MODEL_CARD.md").read_text()
    assert "PhysioNet" in card and "GPL" in card and "sha256" in card
    assert "Held-out scores" in card and "cross-validation" in card
    # month/day without a year: the tagger's features, not a rule, in a context no rule lists
    found = tagger.tag("extubated overnight, cultures from 10/1 pending.", {"shape": []})
    assert len(found.tokens) == len(found.phi) and all(0.0 <= p <= 1.0 for p in found.phi)


def test_the_tagger_holds_no_word_outside_its_vocabularies() -> None:
    """Only words of the public vocabularies enter the model as themselves, so the training notes'
    surrogate names are not in it (a census surname is known only as "a census surname")."""
    import pycrfsuite

    from umcl.ingest.deid import tagger
    from umcl.ingest.deid.lexicon import is_ordinary
    from umcl.ingest.deid.lists import ranks

    info = pycrfsuite.Tagger()
    info.open(str(tagger.MODEL_FILE))
    words = {a.split("w=", 1)[1] for (a, _), _ in info.info().state_features.items() if "w=" in a}
    words.discard("?")
    strange = [
        w
        for w in words
        if not (
            w in ranks("english")
            or w in ranks("drugs")
            or is_ordinary(w)
            or w.isdigit()
            or "|" in w
        )
    ]
    assert not strange, strange[:20]
    assert "okafor" not in words and "quartermain" not in words


def test_second_heldout_set_is_scored_and_no_worse_than_its_first_score():
    """`benchmarks/phi_heldout2.jsonl` (issue 24's shapes) was written before the code it
    measures and never tuned on. This guards against regressions only: see RESULTS."""
    heldout = bench.load_corpus(REPO / "benchmarks/phi_heldout2.jsonl")
    phi = [e for e in heldout if e["identifiers"]]
    assert len(phi) >= 60 and len(heldout) - len(phi) >= 60
    result = bench.score(bench.shipped(), heldout, bench.ordinary_words(heldout))
    # its score with the tagger (2026-12-06): 0.772 of 114 identifiers, 4 of 72 clinical
    # sentences changed (5.6 %); before this code, 0.553 and 11.1 %
    assert result["recall_overall"] >= 0.75, result["misses"]
    assert result["clinical_changed"] <= 0.06, result["misses"]


@pytest.mark.parametrize(
    ("name", "least_phi", "least_clinical", "least_recall", "most_changed"),
    [
        # its first score (the scrubber of 73b96e6): 0.863 of 182 identifiers, 1 of 88 changed
        ("phi_heldout3", 100, 80, 0.86, 0.02),
        # its first score (the scrubber of a7f2baf): 0.828 of 203 identifiers, 3 of 106 changed
        ("phi_heldout4", 120, 100, 0.82, 0.03),
        # its first score (the scrubber of 257628b): 207 of 238 identifiers (0.870), 5 of 114 changed
        ("phi_heldout5", 130, 110, 0.869, 0.045),
        # its first score (the scrubber of 0b34cb2): 268 of 293 identifiers (0.915), 14 of 123 changed
        ("phi_heldout6", 130, 120, 0.914, 0.114),
    ],
)
def test_a_blind_heldout_set_is_scored_and_no_worse_than_its_first_score(
    name, least_phi, least_clinical, least_recall, most_changed
):
    """`benchmarks/phi_heldout3.jsonl` to `phi_heldout6.jsonl` were each written by a reviewer
    who had read neither the scrubber nor the other corpora, before the code they first measured.
    A regression guard: see RESULTS."""
    heldout = bench.load_corpus(REPO / f"benchmarks/{name}.jsonl")
    for entry in heldout:
        assert all(i["text"] in entry["text"] for i in entry["identifiers"])
    phi = [e for e in heldout if e["identifiers"]]
    assert len(phi) >= least_phi and len(heldout) - len(phi) >= least_clinical
    result = bench.score(bench.shipped(), heldout, bench.ordinary_words(heldout))
    assert result["recall_overall"] >= least_recall, result["misses"]
    assert result["clinical_changed"] <= most_changed, result["misses"]


def test_the_tagger_gives_each_thread_its_own_answer() -> None:
    """The CRF holds one sequence at a time; threads scrubbing different texts at once get the
    answers they get alone (without the lock: out-of-range errors and wrong spans)."""
    from concurrent.futures import ThreadPoolExecutor

    texts = [
        f"extubated {i % 9 + 1}/{i % 27 + 1}, daughter {name} at the bedside."
        for i, name in enumerate(["marcela", "dwayne", "rosalie", "ernesto"] * 25)
    ]
    alone = [find_phi(t) for t in texts]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(find_phi, texts))
    assert together == alone


@pytest.mark.parametrize(
    "unit", ["pt ", "RN ", "md ", "MD\t\t\t", "per md ", "to x ", "1->2 nov, "]
)
def test_a_run_of_trigger_words_costs_time_in_proportion_to_its_length(unit):
    """Four times the text, about four times the work: a rule that reads a run of its trigger
    words to the end from each of them ("pt pt pt …": 24 s for 40,000 characters) is quadratic."""
    scrub_text("warm up: Dr. Okafor")

    def seconds(length: int) -> float:
        text = (unit * (length // len(unit) + 1))[:length]
        started = time.process_time()
        scrub_text(text)
        return time.process_time() - started

    short, long = seconds(10_000), seconds(40_000)
    assert long < 9 * max(short, 0.05), (short, long)
