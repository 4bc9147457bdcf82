"""The words of radiology reports and English grammar that are never identifiers on their own.

Besides the lists below, every drug name of the public drug list that is no census name
(`lists.py: protected_drugs`: "lasix", "Coumadin", "Zosyn") is ordinary.

Every layer asks the same questions of a word (ordinary? an abbreviation? an eponym before its head
noun?), so the lists and the predicates live here once: the rules (`rules.py`, `names.py`) use
them to reject clinical wording, the NER filter (`ner.py`) to drop its hits on it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from umcl.ingest.deid.lists import protected_drugs


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
consulted consultation opinion second protocol protocolled protocoled consensus
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
healed callus broken porta bursa dislocation wedging wedge height loss destruction lytic sclerotic blastic
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
postop post-op preop pre-op periop post-surgical postprocedural post-procedural surgical surgery
resection resected lobectomy
pneumonectomy wedge thoracotomy thoracentesis thoracostomy pleurodesis biopsy cabg
tavr tavi avr mvr ablation vertebroplasty kyphoplasty fusion laminectomy arthroplasty
hardware device devices tube tubes line lines catheter catheters drain drains lead leads wire
wires clip clips staple staples suture sutures stent stents graft grafts prosthesis prosthetic
implant implants pacemaker pacer defibrillator icd aicd port ports generator battery pump
balloon filter shunt valve coil coils sheath cannula endotracheal tracheostomy nasogastric
orogastric enteric feeding gastrostomy jejunostomy chest-tube pigtail picc central venous arterial aline a-line artline art-line
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
grade grades graded grading stage stages staged type types class classes category score scores
sarcoid sarcoidal spina bifida occulta focus foci complex rosette rosettes proteinuria
mottling shadowing haziness sequelae sequela fibrocavitary bamboo flowing sail crazy paving
mosaic attenuation tree-in-bud halo crescent ball lily egg shell phantom pseudotumour
pseudotumor encysted pyopneumothorax unknown undetermined unspecified unclear uncertain
miliary name names surname forename sex gender postcode pincode suburb zip medicare medicaid
aadhaar ihi nhi uhid ur urn bat batwing wing wings golfer golfer's housemaid housemaid's
boxer boxer's hangman hangman's shoveler shoveler's tennis jumper's runner's swimmer's
"""
# Hospital services and teams as notes shorten them ("read back to ortho", "per neuro", "signed
# off by physio"): never a person or a place.
_SERVICES = """
ortho orthopaedics orthopedics physio physiotherapy haem haematology heme hematology onc oncology
hemonc haemonc obs gyn obgyn paeds peds paediatrics pediatrics scbu nnu ccot rrt triage
anaesthetics anaesthesia anesthesia anaes gastro cardio cards resp neuro nephro uro urology derm
rheum endo ent maxfax plastics psych geris gerontology palliative micro rads surg slt ot
dietetics dietitian tvn
"""
# Laboratory and bedside abbreviations written in mixed case ("Hb 9.8", "Hgb", "SpO2"), and the
# short forms of Indian, UK and Australian reports ("K/C/O", "B/L", "Rt", "SpR", "RACF").
_LAB_AND_SHORT_FORMS = """
hb hgb hct mcv wbc rbc plt tlc dlc inr aptt ptt crp esr ldh bnp egfr gfr rbs fbs ppbs hba1c
urea creat creatinine na k cl ca mg phos alt ast alp ggt tsh lft lfts rft rfts kft ue u&e fbc
cbc abg vbg lactate trop troponin ddimer d-dimer procalcitonin afb cbnaat mantoux igra
spo2 sats sat fio2 peep cpap bipap niv hfnc rr hr bp temp gcs news mews
rt lt b/l bl k/c/o c/o h/o s/o r/o o/e ?lrti lrti urti nad nil spr shs fy1 fy2 ho sho reg
racf rmo jmo resus ed ae a&e amu cdu hdu itu opd ipd ntm ctpa hrct usg cect ncct tb ptb eptb
osh
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
    adventist baptist methodist presbyterian lutheran episcopal deaconess hosp rehab campus
    building pavilion"""
)
# Family members a name may follow: "granddaughter Priyanka called", "spoke with niece Ama".
_KIN = (
    r"(?:wife|husband|son|daughter|mother|father|sister|brother|grandson|granddaughter|grandchild|grandmother"
    r"|grandfather|grandma|grandpa|niece|nephew|aunt|uncle|cousin|stepson|stepdaughter|mum|mom|dad"
    r"|fianc[eé]e?|boyfriend|girlfriend)"
)
# Whom a patient is related to, or who cares for them: "son-in-law", "carer", "next of kin".
_RELATION = (
    rf"(?:(?:son|daughter|mother|father|sister|brother)-in-law|{_KIN}|spouse|partner|sibling|dtr|dau"
    r"|carer|caregiver|guardian|friend|neighbou?r|relative|attendant|gp|nok|next[ \t]+of[ \t]+kin"
    r"|key[ \t]+worker|social[ \t]+worker)"
)
_RELATION_WORD = re.compile(rf"(?i:{_RELATION})")


def is_relation(word: str) -> bool:
    """A relation or carer, the whole word: "Mom", "son-in-law", "next of kin"."""
    return _RELATION_WORD.fullmatch(word) is not None


# A number and its unit before "per" and what it is counted in after: a rate ("2 Gy per
# fraction", "40 mg per day"); "1200 units/hr per md saeed" says who ordered it.
_RATE_BEFORE = re.compile(r"\d[\d.,]*[ \t]*(?:[^\W\d_]{1,8}(?:/[^\W\d_]{1,4})?[ \t]*)?$")
_RATE_AFTER = re.compile(
    r"[ \t]*(?i:fractions?|fx|doses?|days?|d|hours?|hrs?|h|minutes?|mins?|kg|weeks?|wks?|months?"
    r"|sessions?|cycles?|treatments?|l|litres?|liters?|ml|meals?|shifts?|breaths?|beats?)\b"
)


def is_rate(text: str, per_start: int, per_end: int) -> bool:
    before = _RATE_BEFORE.search(text, max(0, per_start - 24), per_start) is not None
    return before and _RATE_AFTER.match(text, per_end) is not None


# A kind of home after the word: it describes the home ("lives in uptown apartment").
_DWELLING = re.compile(
    r"[ \t]+(?i:apartments?|apt|house|home|flat|condo|building|complex|facility|residence|shelter"
    r"|community|estate|cottage|bungalow)\b"
)
# Eponyms and makers that are clinical, whatever follows them.
_EPONYMS = _wordset(
    """passy passy-muir allred willebrand kerley westermark fleischner chilaiditi luftsichel pancoast morgagni bochdalek kartagener
    dobhoff swan ganz swan-ganz port-a-cath portacath mediport pleurx impella heartmate amplatzer
    watchman mitraclip medtronic biotronik jude abbott edwards carpentier-edwards starr-edwards
    sorin guidant zoll hounsfield valsalva trendelenburg schmorl scheuermann kummell lemierre
    boerhaave zenker schatzki fallot ebstein eisenmenger kommerell rigler naclerio macklin
    sengstaken blakemore sengstaken-blakemore jackson-pratt minnesota salem hickman broviac
    groshong quinton permcath tesio mahurkar denver pleurevac heimlich valsalva fontan glenn
    blalock-taussig norwood rastelli bentall nissen whipple billroth roux-en-y ivor-lewis
    hodgkin hodgkin's non-hodgkin wegener wegener's kaposi ewing askin langerhans swyer-james
    macleod mounier-kuhn goodpasture churg-strauss behcet sjogren raynaud horner virchow
    luschka erlenmeyer barrett barrett's duchenne duchenne's meckel harrington steinmann kirschner gianturco greenfield foley
    koch pott ghon ranke assmann salter-harris hill-sachs bankart widal mantoux schatzker
    segond lisfranc monteggia galeazzi colles osgood-schlatter perthes romanus forestier
    cushing crohn paget parkinson alzheimer hashimoto marfan hirschsprung hickam occam haller
    hampton lyme legionnaires brock ortner hippel lindau hippel-lindau von-hippel-lindau mallory-weiss williams-campbell lady-windermere
    epstein-barr coxsackie norwalk hantaan hanta ebola marburg lassa nipah hendra zika dengue
    chikungunya powassan henoch schonlein schönlein henoch-schonlein kugelberg welander werdnig
    romberg babinski homans mcmurray blumberg cullen spurling faber apley lachman phalen tinel
    finkelstein kernig brudzinski trousseau chvostek gail shiley bivona portex"""
)
# Organisms by genus and species, and their short forms ("Histoplasma capsulatum", "Staph"):
# Latin names that read like surnames to a capitalisation rule or the NER.
_ORGANISMS = _wordset(
    """histoplasma staphylococcus staphylococci staph streptococcus streptococci strep klebsiella
    legionella pneumocystis aspergillus nocardia mycobacterium mycobacteria pseudomonas
    haemophilus hemophilus moraxella mycoplasma chlamydia chlamydophila coccidioides blastomyces
    cryptococcus candida actinomyces stenotrophomonas acinetobacter enterobacter
    escherichia serratia proteus enterococcus clostridium clostridioides bordetella coxiella
    francisella yersinia bacillus listeria neisseria salmonella shigella campylobacter
    helicobacter treponema borrelia rickettsia toxoplasma strongyloides echinococcus paragonimus
    schistosoma mucor rhizopus fusarium scedosporium cytomegalovirus hantavirus influenza
    parainfluenza rhinovirus adenovirus metapneumovirus varicella zoster herpes rubella measles
    rhodococcus achromobacter citrobacter morganella providencia prevotella bacteroides
    fusobacterium peptostreptococcus veillonella eikenella kingella cardiobacterium
    capnocytophaga pasteurella brucella leptospira talaromyces penicillium sporothrix
    jirovecii carinii capsulatum aureus epidermidis pneumoniae pyogenes agalactiae aeruginosa
    fumigatus flavus tuberculosis avium intracellulare kansasii abscessus xenopi influenzae
    catarrhalis burnetii pestis tularensis anthracis immitis posadasii dermatitidis neoformans
    gattii albicans glabrata auris israelii asteroides maltophilia
    baumannii difficile pertussis monocytogenes meningitidis gonorrhoeae typhi jejuni pylori
    pallidum burgdorferi gondii stercoralis granulosus westermani mansoni coli faecalis faecium
    cloacae aerogenes marcescens mirabilis fragilis oxytoca freundii viridans lugdunensis hominis
    perfringens trachomatis vaginalis lamblia vulnificus cepacia saprophyticus haemolyticus"""
)
_EPONYMS = _EPONYMS | _ORGANISMS
# (Eponyms that are also common names, "Simon focus", "Weber B", "Garden III", "Brodie abscess",
# are clinical only before their head noun: `_eponym_head_follows`.)
# Nouns after which a capitalised word is an eponym, not a person ("Hampton hump", "Foley catheter").
_EPONYM_HEADS = _wordset(
    """sign signs line lines hump syndrome disease catheter catheters filter tube tubes drain
    drains band bands hernia valve valves clip clips shunt fracture fractures lesion effect
    phenomenon procedure repair operation anastomosis classification criteria score guideline
    guidelines view projection position maneuver manoeuvre technique angle triangle space node
    nodes sump stent prosthesis device port pump balloon tumor tumour sarcoma lymphoma ring
    sulcus fissure foramen ligament duct canal society anomaly malformation sequence
    deformity body bodies cell cells lung cyst cysts focus foci complex spine abscess aneurysm
    rosettes proteinuria protein test reflex bursa ulcer triad granuloma tubercle diverticulum
    pouch point palsy joint injury nodule nodules type grade stage sequelae nerve artery
    murmur jacket brace collar frame flap occluder bar pin pins rod rods nail nails wire wires
    plate plates screw screws splint cast circulation pentad tetralogy infraction fragment
    index dictum razor virus fever encephalitis scale scales protocol formula lift list blade bed
    mattress tear tears pupil pupils"""
)
# Scores and classifications named after a person or a place, written before their value ("Riker
# 4", "Killip 3", "Bosniak 3", "Fazekas 2"): before a number they are a grade, never a ward.
_NAMED_SCALES = _wordset(
    """riker ramsay rass killip nyha bosniak rockwood hinchey gustilo mallampati fazekas pfirrmann kellgren
    lawrence deauville modic gleason apgar braden morse glasgow richmond pugh ranson wells salter
    garden weber schatzker neer tanner hunt hess fisher spetzler clavien dindo lauren borrmann
    breslow clark dukes masaoka hoehn yahr lugano ann arbor figo tnm mrc borg sofa apache saps
    curb caprini padua chads hasbled wilkins sewell karnofsky ecog lansky rankin nihss barthel
    norton waterlow forrester stanford debakey crawford siewert bethesda tirads birads lirads
    pirads orads cad-rads"""
)
# A head noun that names a procedure or a disease by its ending ("Heller myotomy", "Hashimoto's
# thyroiditis", "Ivor Lewis oesophagectomy").
_DISEASE_OR_PROCEDURE = re.compile(
    r"(?:itis|osis|ectomy|otomy|ostomy|plasty|pexy|rrhaphy|scopy|graphy|pathy|megaly|ectasis"
    r"|algia|plegia|trophy|plasia|omas?|a?emia|iasis)$"
)
# What sits between an eponym and its head: a possessive, a letter, a Roman numeral or a type
# ("Kerley B lines", "Baker's cyst", "Garden III fracture", "Salter-Harris type 2 fracture").
# A second eponym may come first ("Austin Flint murmur", "Grey Turner sign").
_EPONYM_LINK = re.compile(
    r"^(?:['’]s?)?\)?(?:[ \t-]+[A-Z][a-z]+(?:['’]s?)?(?=[ \t-]+[a-z]))?"
    r"(?:[-\s]*(?:[A-Za-z]|[IVX]{1,4}[A-Fa-f]?|[Tt][Yy][Pp][Ee][\s-]*(?:\d+|[IVX]+)"
    r"|\d+[A-Ca-c]?)\b)?[\s-]*(?P<head>[A-Za-z]+)"
)
# Clinical phrases made of words that are names elsewhere: never an identifier as a whole.
_CLINICAL_PHRASE = re.compile(
    r"\b(?:angle[ \t]+of[ \t]+Louis|Adam['’]s[ \t]+apple|Bence[ \t-]+Jones|Homer[ \t-]+Wright"
    r"|pouch[ \t]+of[ \t]+Douglas|circle[ \t]+of[ \t]+Willis|ligament[ \t]+of[ \t]+Treitz"
    r"|sphincter[ \t]+of[ \t]+Oddi|canal[ \t]+of[ \t]+Nuck|space[ \t]+of[ \t]+Retzius"
    r"|islets?[ \t]+of[ \t]+Langerhans|loop[ \t]+of[ \t]+Henle|bundle[ \t]+of[ \t]+His"
    r"|Sister[ \t]+Mary[ \t]+Joseph|Ivor[ \t-]+Lewis|Le[ \t]+Fort|Reed[ \t-]+Sternberg"
    r"|Charcot[ \t-]+Leyden|Guillain[ \t-]+Barr[ée]|Osgood[ \t-]+Schlatter|Legg[ \t-]+Calv[ée]"
    r"|Salter[ \t-]+Harris|Hill[ \t-]+Sachs|Swan[ \t-]+Ganz|Greulich[ \t]+(?:and|&)[ \t]+Pyle"
    # diseases and viruses named after places: "Rocky Mountain spotted fever", "West Nile virus"
    r"|(?:Rocky[ \t]+Mountain|West[ \t]+Nile|Murray[ \t]+Valley|Barmah[ \t]+Forest"
    r"|Rift[ \t]+Valley|Kyasanur[ \t]+Forest|Crimean[ \t-]+Congo|St\.?[ \t]+Louis|La[ \t]+Crosse"
    r"|(?:Eastern|Western|Venezuelan)[ \t]+equine|Japanese|Omsk|Pontiac|Valley|Lassa|Q|Mediterranean"
    r"|Norwalk|Powassan|Hantaan|Coxsackie|Epstein[ \t-]+Barr|Lyme|Ebola|Marburg)"
    r"(?:[ \t]+(?:spotted|hemorrhagic|haemorrhagic|respiratory|tick|equine|encephalitis|virus|fever"
    r"|disease|syndrome|orthohantavirus|borreliosis)\b)+"
    # adjectives that are given names elsewhere: "Frank blood in the bag", "Bright red bleeding"
    r"|(?:Frank|Bright)(?:[ \t]+red)?[ \t]+(?:blood|bleeding|pus|ha?emoptysis|ha?ematuria|mela?ena"
    r"|ha?emorrhage|aspiration|rupture|perforation|dislocation|malignancy|invasion|herniation"
    r"|necrosis|pneumoperitoneum|o?edema|consolidation|abscess|obstruction|ischa?emia|sepsis)"
    # the hyphenated eponyms also written with a space: "Churg Strauss", "Swyer James"
    + "".join(
        "|" + r"[ \t-]+".join(map(re.escape, e.split("-")))
        for e in sorted(_EPONYMS)
        if "-" in e and not e.startswith(("non-", "roux"))
    )
    + r")\b",
    re.IGNORECASE,
)
# Lower-case tokens with digits that are clinical, not user names ("pco2", "hba1c").
_CLINICAL_ALNUM = _wordset(
    "fio2 spo2 sao2 pao2 pco2 paco2 etco2 hco3 hba1c covid19 sars2 vo2 feno nt-probnp"
)
# Surnames and given names that are everyday English words ("White cell count", "Small left
# effusion", "Hope", "Ward"). As a record's known name they are removed only where they stand
# as a name (`rules._known_spans`).
_WORD_NAMES = _wordset(
    """white brown black green gray grey young old small long short little large hill wood woods
    field fields rose may june april hope faith grace joy love bush cross stone stones rice bell
    hall king page ward major marsh fox baker mason sharp strong wise best hunt lamb mills banks
    waters wells rivers brook brooks lake bridge street church castle park parks moore bishop dean
    judge carpenter cook cooper porter turner walker fisher hunter gardner foster price frost snow
    day knight glass gold silver steel clay reed read head heart hand hands foot bone bones back
    rib ribs chest lung mark will bill rich frank sterling swift fair good goodman sweet bright
    gay power powers bond burns cash lee wing mann bull root roots fine free golden noble"""
)


def is_word_name(word: str) -> bool:
    """A name that is also an ordinary word: clinical or English ("Small", "White", "Hope")."""
    return is_ordinary(word) or _bare(word) in _WORD_NAMES


_WORDS = frozenset(
    w.lower()
    for w in (
        _FUNCTION_WORDS + _CLINICAL_WORDS + _INSTITUTION_WORDS + _LAB_AND_SHORT_FORMS + _SERVICES
    ).split()
)
# Grammar words that are also given names ("Will", "May", "Hope"): after a cue and before a
# surname they are the first name ("phoned to Will Brown"), not a role word to skip.
_GRAMMAR = _wordset(_FUNCTION_WORDS.lower())
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


# A species' Latin ending, which reads as a species after a genus initial in capitals too:
# "A. XYLOSOXIDANS", "P. OVALE", "S. JAPONICUM".
_LATIN_EPITHET = re.compile(r"(?:um|ae|ii|is|us|ans|ens|ale|oides|ica|ata|ella)$")
# A vertebral level or a span of them: "T10-T11", "L4-5", "C7".
_LEVEL = r"(?:c[1-8]|t(?:1[0-2]|[1-9])|l[1-5]|s[1-5])"
_SPINAL_LEVELS = re.compile(rf"{_LEVEL}(?:-(?:{_LEVEL}|\d{{1,2}}))?")


@lru_cache(maxsize=65536)
def is_ordinary(word: str) -> bool:
    """A word of radiology reports or of English grammar: never an identifier on its own."""
    bare = _bare(word)
    if bare in _WORDS or bare in protected_drugs() or not any(c.isalpha() for c in bare):
        return True
    if _SPINAL_LEVELS.fullmatch(bare):
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
    match = _EPONYM_LINK.match(text[end : end + 40])
    if not match:
        return False
    head = match.group("head").lower()
    return head in _EPONYM_HEADS or (len(head) >= 6 and bool(_DISEASE_OR_PROCEDURE.search(head)))


# An anatomical part named after a person: "<part> of <Eponym>" ("circle of Willis", "duct of
# Wirsung", "triangle of Koch"): no name follows these nouns and "of" in a report.
_PART_OF_EPONYM = re.compile(
    r"\b(?i:circle|vein|veins|pouch|foramen|foramina|ampulla|sphincter|ligament|canal|space|islets?"
    r"|loop|bundle|duct|triangle|node|organ|tract|crypts?|sign|angle|fissure|sinus|valve|column"
    r"|columns|fossa|recess|body|bodies|glands?|plexus|line|lines|ring|tubercle|band)[ \t]+of[ \t]+"
    r"[A-Z][a-zà-ÿ'’-]+"
)


def _clinical_phrases(text: str) -> list[tuple[int, int]]:
    """Where `text` holds a clinical phrase whose words are names elsewhere ("angle of Louis")."""
    return [
        m.span() for pattern in (_CLINICAL_PHRASE, _PART_OF_EPONYM) for m in pattern.finditer(text)
    ]


# How a result is passed on, not who passed it: "communicated by email", "paged by bleep".
_MEDIA = frozenset(
    [
        "email",
        "e-mail",
        "mail",
        "pager",
        "page",
        "bleep",
        "fax",
        "text",
        "sms",
        "voicemail",
        "letter",
        "telephone",
        "phone",
        "teams",
        "chat",
        "epic",
        "portal",
        "tannoy",
        "intercom",
    ]
)
