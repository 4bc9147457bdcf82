"""Write `benchmarks/phi_corpus.jsonl`: the hand-written PHI test corpus that `deid.py` scores.

    python benchmarks/make_phi_corpus.py

Every sentence below was written by hand, in the wording of different institutions (US academic
and community hospitals, UK NHS trusts, Canadian, Australian and Indian sites, RIS exports, PACS
footers). This script only checks each entry (every identifier string occurs in its text, every
`keep` string too) and writes one JSON object a line; the format is documented in `deid.py`.
The identifiers are invented; phone numbers use the 555-01xx range where the format allows.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "phi_corpus.jsonl"

# (text, {kind: [surface strings that must not survive]}, [clinical text that must survive])
Entry = tuple[str, dict[str, list[str]], list[str]]

NAMES: list[Entry] = [
    (
        "Findings were discussed with Dr. Hernandez at 4:15 pm on the day of the study.",
        {"name": ["Dr. Hernandez"]},
        [],
    ),
    (
        "Preliminary result called to Dr Priya Natarajan, who acknowledged receipt.",
        {"name": ["Priya Natarajan"]},
        [],
    ),
    (
        "Critical result communicated to the ordering clinician, Michael O'Connor, NP, by telephone.",
        {"name": ["Michael O'Connor"]},
        [],
    ),
    ("Patient name: KOWALSKI, ANNA M", {"name": ["KOWALSKI, ANNA"]}, []),
    ("Referring physician: DOE^JOHN^A", {"name": ["DOE^JOHN"]}, []),
    ("Electronically signed by: jdoe1987", {"name": ["jdoe1987"]}, []),
    (
        "Discussed with Aisha at the bedside; she agreed with the plan for a repeat film.",
        {"name": ["Aisha"]},
        ["she agreed with the plan for a repeat film"],
    ),
    ("Dictated by: Wei Zhang, MD. Transcribed by: mlopez.", {"name": ["Wei Zhang", "mlopez"]}, []),
    (
        "I have personally reviewed the images and agree with the findings of Dr. Adeyemi-Okafor.",
        {"name": ["Adeyemi-Okafor"]},
        ["I have personally reviewed the images"],
    ),
    (
        "Reported by Dr J. Bloggs, Consultant Radiologist.",
        {"name": ["J. Bloggs"]},
        ["Consultant Radiologist"],
    ),
    ("Results relayed to nurse Carmen on the ward.", {"name": ["Carmen"]}, []),
    (
        "Mr. Tanaka tolerated the procedure well and there were no immediate complications.",
        {"name": ["Mr. Tanaka"]},
        ["there were no immediate complications"],
    ),
    (
        "Ms. Fitzgerald-Reyes was positioned supine for the portable examination.",
        {"name": ["Fitzgerald-Reyes"]},
        [],
    ),
    (
        "At Dr. Goldberg's request, a left lateral decubitus view was added.",
        {"name": ["Goldberg"]},
        ["a left lateral decubitus view was added"],
    ),
    (
        "Attending: Rachel Kim, MD   Resident: Tomasz Nowak, MD",
        {"name": ["Rachel Kim", "Tomasz Nowak"]},
        [],
    ),
    (
        "The patient, Dolores Whitfield, reports a fall two days ago with right-sided chest wall pain.",
        {"name": ["Dolores Whitfield"]},
        ["right-sided chest wall pain"],
    ),
    ("Technologist: RSANTOS", {"name": ["RSANTOS"]}, []),
    ("Case reviewed with Dr. van der Berg of thoracic surgery.", {"name": ["van der Berg"]}, []),
    (
        "Wet read provided by Siddharth Rao (radiology resident) overnight.",
        {"name": ["Siddharth Rao"]},
        [],
    ),
    ("Findings d/w Dr. Mbeki via secure chat.", {"name": ["Dr. Mbeki"]}, []),
    ("Phoned to Lucía Fernández, RN, on the medical floor.", {"name": ["Lucía Fernández"]}, []),
    (
        "Comparison is made to the outside study from Dr. Abernathy's office.",
        {"name": ["Abernathy"]},
        [],
    ),
    (
        "Pt identified by name (Gunnar Lindqvist) and date of birth prior to the exam.",
        {"name": ["Gunnar Lindqvist"]},
        [],
    ),
    ("Ordering provider: Schwartz, Deborah L.", {"name": ["Schwartz, Deborah"]}, []),
    ("Patient: O'BRIEN^SEAN", {"name": ["O'BRIEN^SEAN"]}, []),
    ("Verbal report given to Kwame in the ICU at the time of the study.", {"name": ["Kwame"]}, []),
    (
        "Study protocolled by jpatel2 and performed by technologist mnguyen.",
        {"name": ["jpatel2", "mnguyen"]},
        [],
    ),
    ("cc: Dr. Eleanor Vance; Dr. Haruki Sato", {"name": ["Eleanor Vance", "Haruki Sato"]}, []),
    (
        "Exam requested by Dr. Olusegun Bankole for evaluation of chronic cough.",
        {"name": ["Olusegun Bankole"]},
        ["for evaluation of chronic cough"],
    ),
    (
        "Patient Ngozi Eze was accompanied by her daughter Chidinma.",
        {"name": ["Ngozi Eze", "Chidinma"]},
        [],
    ),
    (
        "Second opinion requested by the patient's husband, Robert Lindgren.",
        {"name": ["Robert Lindgren"]},
        [],
    ),
    (
        "Addendum: after discussion with Dr. Li, the nodule is felt to be new.",
        {"name": ["Dr. Li"]},
        ["the nodule is felt to be new"],
    ),
    (
        "Images reviewed with Fatima and her attending before the patient left the department.",
        {"name": ["Fatima"]},
        [],
    ),
    ("Radiologist: MARTINEZ-GARCIA, LUIS", {"name": ["MARTINEZ-GARCIA, LUIS"]}, []),
    (
        "This report was finalized by Dr. Nakamura-Ellis on behalf of Dr. Brennan.",
        {"name": ["Nakamura-Ellis", "Brennan"]},
        [],
    ),
    ("Prepared by a.wojcik for the thoracic conference.", {"name": ["a.wojcik"]}, []),
    ("Stat read paged to Dr. Okonkwo; no callback received.", {"name": ["Dr. Okonkwo"]}, []),
    (
        "Reading room consult with Jean-Pierre Dubois, chest fellow.",
        {"name": ["Jean-Pierre Dubois"]},
        [],
    ),
    (
        "Mrs Margaret Ellsworth-Hughes attended with her carer.",
        {"name": ["Margaret Ellsworth-Hughes"]},
        [],
    ),
    (
        "Vetted by Dr S. Ramaswamy (Consultant) and reported by Dr A. Chaudhry (ST4).",
        {"name": ["S. Ramaswamy", "A. Chaudhry"]},
        [],
    ),
    (
        "Images were reviewed with Dr. Yusuf in the multidisciplinary meeting; surgical opinion awaited.",
        {"name": ["Yusuf"]},
        ["surgical opinion awaited"],
    ),
    ("Findings conveyed to the patient's son Diego by phone.", {"name": ["Diego"]}, []),
    (
        "The ED physician, Dr. Castellanos, was notified of the pneumothorax.",
        {"name": ["Castellanos"]},
        ["was notified of the pneumothorax"],
    ),
]

DATES: list[Entry] = [
    ("Comparison: chest radiograph dated 03/14/2021.", {"date": ["03/14/2021"]}, []),
    (
        "Compared with the prior study of 3/14/21, the left effusion has decreased.",
        {"date": ["3/14/21"]},
        ["the left effusion has decreased"],
    ),
    (
        "Prior CT chest 2021-03-14 demonstrated a 6 mm right upper lobe nodule.",
        {"date": ["2021-03-14"]},
        ["6 mm right upper lobe nodule"],
    ),
    (
        "Comparison with the examination of 14.03.2021 shows no change.",
        {"date": ["14.03.2021"]},
        ["shows no change"],
    ),
    (
        "Since March 14, 2021, there has been interval enlargement of the left effusion.",
        {"date": ["March 14, 2021"]},
        ["interval enlargement of the left effusion"],
    ),
    (
        "Prior radiograph of 14 Mar 2021 showed similar appearances.",
        {"date": ["14 Mar 2021"]},
        ["showed similar appearances"],
    ),
    ("Follow-up of the Mar-14-2021 examination.", {"date": ["Mar-14-2021"]}, []),
    ("StudyDate 20210314; no acute findings.", {"date": ["20210314"]}, ["no acute findings"]),
    (
        "Patient was seen in clinic on the 14th of March for persistent cough.",
        {"date": ["14th of March"]},
        ["persistent cough"],
    ),
    ("Exam performed 03/14/2021 14:35.", {"date": ["03/14/2021 14:35"]}, []),
    ("DOB: 07/04/1931", {"date": ["07/04/1931"]}, []),
    ("Date of service: 2019/11/02 08:45", {"date": ["2019/11/02 08:45"]}, []),
    ("Exam date 11-02-2019.", {"date": ["11-02-2019"]}, []),
    ("Admitted on Nov 2nd, 2019 with dyspnea.", {"date": ["Nov 2nd, 2019"]}, ["with dyspnea"]),
    (
        "The previous film from 2 November 2019 is not available for comparison.",
        {"date": ["2 November 2019"]},
        [],
    ),
    ("Comparison: 02-Nov-2019.", {"date": ["02-Nov-2019"]}, []),
    ("Last chest imaging 11/2019 at an outside facility.", {"date": ["11/2019"]}, []),
    (
        "Follow-up CT is recommended in 3 months, around June 2022.",
        {"date": ["June 2022"]},
        ["Follow-up CT is recommended in 3 months"],
    ),
    ("Study performed on 12.01.22 on the portable unit.", {"date": ["12.01.22"]}, []),
    ("Prior exam: Sept. 5, 2020.", {"date": ["Sept. 5, 2020"]}, []),
    ("Received 2020-09-05T13:22:10 from the outside PACS.", {"date": ["2020-09-05T13:22:10"]}, []),
    (
        "The chest tube placed on 9/5 remains in good position.",
        {"date": ["9/5"]},
        ["remains in good position"],
    ),
    ("The patient was born on 4 July 1931.", {"date": ["4 July 1931"]}, []),
    ("Birth date: 19310704", {"date": ["19310704"]}, []),
    (
        "Comparison is made with radiographs from 1/7/2020 and 1/9/2020.",
        {"date": ["1/7/2020", "1/9/2020"]},
        [],
    ),
    ("DOS: 15/08/2022", {"date": ["15/08/2022"]}, []),
    ("Exam time: 2022-08-15 07:41:09", {"date": ["2022-08-15 07:41:09"]}, []),
    ("Reported 15th August 2022 by the on-call registrar.", {"date": ["15th August 2022"]}, []),
    ("The preoperative film of January 3 is unchanged.", {"date": ["January 3"]}, []),
    (
        "Chest x-ray on Aug 15 at 0741 hours showed a new right basilar opacity.",
        {"date": ["Aug 15"]},
        ["showed a new right basilar opacity"],
    ),
    (
        "Compared to 8-15-22, the ET tube has been withdrawn by 2 cm.",
        {"date": ["8-15-22"]},
        ["the ET tube has been withdrawn by 2 cm"],
    ),
    ("Date of birth 1931-07-04, female.", {"date": ["1931-07-04"]}, []),
    (
        "Previous imaging dated 5th Feb 2018 showed a similar nodule.",
        {"date": ["5th Feb 2018"]},
        ["showed a similar nodule"],
    ),
    ("Baseline study: December 2019.", {"date": ["December 2019"]}, []),
    ("Scan acquired 10/31/2023 11:02 AM.", {"date": ["10/31/2023 11:02 AM"]}, []),
    ("Comparison: 31-10-2023.", {"date": ["31-10-2023"]}, []),
]

AGES: list[Entry] = [
    (
        "Indication: 92-year-old woman with dyspnea.",
        {"age": ["92-year-old"]},
        ["woman with dyspnea"],
    ),
    ("Clinical history: age 95, fall.", {"age": ["age 95"]}, []),
    ("97 yo M with CHF exacerbation.", {"age": ["97 yo"]}, ["with CHF exacerbation"]),
    (
        "This 91 year old gentleman presents with productive cough.",
        {"age": ["91 year old"]},
        ["presents with productive cough"],
    ),
    ("Indication: 93 y/o female, hypoxia.", {"age": ["93 y/o"]}, ["hypoxia"]),
    (
        "Pt is 90 yrs old with fever and leukocytosis.",
        {"age": ["90 yrs old"]},
        ["with fever and leukocytosis"],
    ),
    (
        "History: 99-yr-old nursing home resident with suspected aspiration.",
        {"age": ["99-yr-old"]},
        ["suspected aspiration"],
    ),
    (
        "Patient aged 94 presenting with pleuritic chest pain.",
        {"age": ["aged 94"]},
        ["presenting with pleuritic chest pain"],
    ),
    ("Age: 96", {"age": ["Age: 96"]}, []),
    ("A 102-year-old man status post fall from standing.", {"age": ["102-year-old"]}, []),
    ("Female, 98 years, shortness of breath.", {"age": ["98 years"]}, ["shortness of breath"]),
    ("HISTORY: 91F with worsening hypoxia.", {"age": ["91F"]}, ["with worsening hypoxia"]),
]

PHONES: list[Entry] = [
    (
        "Please call the reading room at (617) 555-0134 with questions.",
        {"phone": ["(617) 555-0134"]},
        [],
    ),
    (
        "Dr. Patel can be reached at 617-555-0198.",
        {"phone": ["617-555-0198"], "name": ["Dr. Patel"]},
        [],
    ),
    ("Callback number 312.555.0177.", {"phone": ["312.555.0177"]}, []),
    ("Contact the imaging desk on +1 617 555 0123.", {"phone": ["+1 617 555 0123"]}, []),
    ("Results phoned to ward 7B on ext. 54321.", {"phone": ["ext. 54321"]}, []),
    (
        "For urgent queries ring 020 7188 7188 and ask for the duty radiologist.",
        {"phone": ["020 7188 7188"]},
        [],
    ),
    ("Patient mobile: +44 7700 900123", {"phone": ["+44 7700 900123"]}, []),
    ("Stat read paged to the fellow on pager 3321.", {"phone": ["pager 3321"]}, []),
    ("Referrer contact (02) 9515 6111.", {"phone": ["(02) 9515 6111"]}, []),
    ("Home phone 555-0134.", {"phone": ["555-0134"]}, []),
    ("Toll-free line 1-800-555-0199 for outside films.", {"phone": ["1-800-555-0199"]}, []),
    ("Tel: 6175550142", {"phone": ["6175550142"]}, []),
    ("Discussed with the covering resident at x4-2290.", {"phone": ["x4-2290"]}, []),
]

FAXES: list[Entry] = [
    ("Fax results to (508) 555-0147.", {"fax": ["(508) 555-0147"]}, []),
    ("Fax: 617-555-0166", {"fax": ["617-555-0166"]}, []),
    ("Outside report received by fax no. 617.555.0100.", {"fax": ["617.555.0100"]}, []),
    ("Ph 212-555-0181 / F 212-555-0182", {"phone": ["212-555-0181"], "fax": ["212-555-0182"]}, []),
    ("Report faxed to the GP surgery on 0161 496 0000.", {"fax": ["0161 496 0000"]}, []),
    ("Facsimile +1 (415) 555-0121, attention imaging records.", {"fax": ["+1 (415) 555-0121"]}, []),
]

EMAILS: list[Entry] = [
    (
        "Questions regarding this report may be sent to jdoe@mgh.harvard.edu.",
        {"email": ["jdoe@mgh.harvard.edu"]},
        [],
    ),
    (
        "Copy sent to radiology.reading@stlukes-health.org.",
        {"email": ["radiology.reading@stlukes-health.org"]},
        [],
    ),
    ("Contact: a.kowalczyk@uhn.ca", {"email": ["a.kowalczyk@uhn.ca"]}, []),
    (
        "Images released to the patient at maria.gonzalez82@gmail.com per her request.",
        {"email": ["maria.gonzalez82@gmail.com"]},
        [],
    ),
    ("Send addenda to RADRESULTS@NORTHWELL.EDU", {"email": ["RADRESULTS@NORTHWELL.EDU"]}, []),
    ("Secure mail: j_smith+rad@nhs.net", {"email": ["j_smith+rad@nhs.net"]}, []),
    (
        "Escalations to pacs-admin@clinic.example.net.",
        {"email": ["pacs-admin@clinic.example.net"]},
        [],
    ),
]

ADDRESSES: list[Entry] = [
    (
        "Patient lives at 1450 Oak Street, Springfield, MA 01103.",
        {"address": ["1450 Oak Street", "Springfield"], "zip": ["01103"]},
        [],
    ),
    (
        "Home address: 22 Maple Ave., Apt 4B, Brookline.",
        {"address": ["22 Maple Ave.", "Apt 4B", "Brookline"]},
        [],
    ),
    (
        "Outside films received from 400 N. Main St, Suite 210, Ann Arbor, MI 48104.",
        {"address": ["400 N. Main St", "Ann Arbor"], "zip": ["48104"]},
        [],
    ),
    (
        "The patient resides at 17 Birchwood Lane in Framingham.",
        {"address": ["17 Birchwood Lane", "Framingham"]},
        [],
    ),
    (
        "Transfer from 3100 Kingsway Boulevard, Burnaby, BC V5H 1Z3.",
        {"address": ["3100 Kingsway Boulevard", "Burnaby", "V5H 1Z3"]},
        [],
    ),
    (
        "Mail to PO Box 1234, Boise, ID 83701.",
        {"address": ["PO Box 1234", "Boise"], "zip": ["83701"]},
        [],
    ),
    (
        "Community clinic, 55 Elmwood Drive, Cheektowaga, NY 14225.",
        {"address": ["55 Elmwood Drive", "Cheektowaga"], "zip": ["14225"]},
        [],
    ),
    (
        "Correspondence: 2800 Rockcreek Pkwy, Kansas City, MO 64117-2551.",
        {"address": ["2800 Rockcreek Pkwy", "Kansas City"], "zip": ["64117-2551"]},
        [],
    ),
    (
        "Address: Flat 3, 12 Albion Road, Leeds LS6 1AB",
        {"address": ["12 Albion Road", "Leeds", "LS6 1AB"]},
        [],
    ),
    (
        "Lives alone at 8 Wattle Crescent, Parramatta NSW 2150.",
        {"address": ["8 Wattle Crescent", "Parramatta"]},
        [],
    ),
    (
        "Nursing home: 731 West 5th Avenue, Anchorage.",
        {"address": ["731 West 5th Avenue", "Anchorage"]},
        [],
    ),
]

ZIPS: list[Entry] = [
    ("ZIP code 02115.", {"zip": ["02115"]}, []),
    ("Patient zip: 30322-1059", {"zip": ["30322-1059"]}, []),
    ("Postal code 94143 on file.", {"zip": ["94143"]}, []),
    ("Billing address on file, Houston, TX 77030.", {"zip": ["77030"], "address": ["Houston"]}, []),
]

MRNS: list[Entry] = [
    (
        "MRN: 1234567. Large right pleural effusion with compressive atelectasis.",
        {"mrn": ["1234567"]},
        ["Large right pleural effusion with compressive atelectasis."],
    ),
    ("MR# 00482913", {"mrn": ["00482913"]}, []),
    ("Medical record number 5502-118-93.", {"mrn": ["5502-118-93"]}, []),
    ("Unit No: E7734120", {"mrn": ["E7734120"]}, []),
    ("Patient ID: H0092231  Sex: F", {"mrn": ["H0092231"]}, []),
    ("Hosp #: 7781-2290", {"mrn": ["7781-2290"]}, []),
    (
        "Portable AP chest (MRN 88231904) for line placement.",
        {"mrn": ["88231904"]},
        ["for line placement"],
    ),
    ("Med Rec No. 1029384756", {"mrn": ["1029384756"]}, []),
    ("NHS number 943 476 5919", {"mrn": ["943 476 5919"]}, []),
    (
        "mrn:445599 ; left PICC tip at the cavoatrial junction.",
        {"mrn": ["445599"]},
        ["left PICC tip at the cavoatrial junction."],
    ),
    ("Record #A00384721", {"mrn": ["A00384721"]}, []),
    (
        "MRN 7723315 Comparison: none. The lungs are clear.",
        {"mrn": ["7723315"]},
        ["The lungs are clear."],
    ),
    ("CR No: 201804412 (UHID)", {"mrn": ["201804412"]}, []),
]

ACCESSIONS: list[Entry] = [
    (
        "Accession: ACC12345678. No pneumothorax following the biopsy.",
        {"accession": ["ACC12345678"]},
        ["No pneumothorax following the biopsy."],
    ),
    ("Acc #: RAD-2021-004512", {"accession": ["RAD-2021-004512"]}, []),
    ("Accession number 55128390 has been corrected.", {"accession": ["55128390"]}, []),
    ("ACCN: 8823091X", {"accession": ["8823091X"]}, []),
    ("Acc. No. CT21-118842", {"accession": ["CT21-118842"]}, []),
    ("Order/Accession: 20210314-0045", {"accession": ["20210314-0045"]}, []),
    ("This addendum refers to accession E2290014.", {"accession": ["E2290014"]}, []),
    (
        "Study accession #: 7788123  Stable cardiomegaly.",
        {"accession": ["7788123"]},
        ["Stable cardiomegaly."],
    ),
    ("Exam #: XR-5598124", {"accession": ["XR-5598124"]}, []),
    (
        "Requisition 4410982; indication shortness of breath.",
        {"accession": ["4410982"]},
        ["indication shortness of breath"],
    ),
    (
        "Accession: 2290447.\nSmall left apical pneumothorax, unchanged.",
        {"accession": ["2290447"]},
        ["Small left apical pneumothorax, unchanged."],
    ),
]

SSNS: list[Entry] = [
    ("Guarantor SSN 123-45-6789.", {"ssn": ["123-45-6789"]}, []),
    ("SSN: 078-05-1120", {"ssn": ["078-05-1120"]}, []),
    ("Social security number 219 09 9999 on the requisition.", {"ssn": ["219 09 9999"]}, []),
    ("SS# 457555462", {"ssn": ["457555462"]}, []),
    ("SSN xxx-xx-4321", {"ssn": ["xxx-xx-4321"]}, []),
    ("Soc Sec No: 512-44-8872", {"ssn": ["512-44-8872"]}, []),
]

HEALTH_PLANS: list[Entry] = [
    ("Member ID: XJH123456789", {"health_plan": ["XJH123456789"]}, []),
    ("Medicare ID 1EG4-TE5-MK72", {"health_plan": ["1EG4-TE5-MK72"]}, []),
    ("Medicaid # 88201934A", {"health_plan": ["88201934A"]}, []),
    ("BCBS policy number 88123-44", {"health_plan": ["88123-44"]}, []),
    ("Insurance: Aetna, subscriber ID W2839201847.", {"health_plan": ["W2839201847"]}, []),
    ("Health plan beneficiary number HPB-0048812.", {"health_plan": ["HPB-0048812"]}, []),
    ("Group no. 77120B, plan code PPO.", {"health_plan": ["77120B"]}, []),
]

ACCOUNTS: list[Entry] = [
    ("Acct #: 4456-221", {"account": ["4456-221"]}, []),
    ("Billing account number 99887766.", {"account": ["99887766"]}, []),
    ("Account: A-00982213", {"account": ["A-00982213"]}, []),
    ("Encounter #: 602218834", {"account": ["602218834"]}, []),
    ("FIN 3344556", {"account": ["3344556"]}, []),
    ("Visit number V00451928 (inpatient).", {"account": ["V00451928"]}, []),
]

URLS: list[Entry] = [
    (
        "Key images: https://portal.example-health.org/r/8812",
        {"url": ["https://portal.example-health.org/r/8812"]},
        [],
    ),
    (
        "Report available at www.mercyhealth.org/imaging/results",
        {"url": ["www.mercyhealth.org/imaging/results"]},
        [],
    ),
    (
        "Web link http://pacs.stjohns.local/viewer?study=1.2.840.113619.2.55",
        {"url": ["http://pacs.stjohns.local/viewer?study=1.2.840.113619.2.55"]},
        [],
    ),
    (
        "Outside images uploaded to https://share.lifeimage.com/abc123XYZ for review.",
        {"url": ["https://share.lifeimage.com/abc123XYZ"]},
        [],
    ),
    (
        "Studies pushed to ftp://imaging-archive.example.org/outbound/",
        {"url": ["ftp://imaging-archive.example.org/outbound/"]},
        [],
    ),
    (
        "Patient portal: mychart.baystatehealth.org/MyChart/",
        {"url": ["mychart.baystatehealth.org/MyChart/"]},
        [],
    ),
]

IPS: list[Entry] = [
    ("Study sent from modality at 10.2.33.14.", {"ip": ["10.2.33.14"]}, []),
    (
        "Workstation 192.168.1.105 was used for the 3D reconstructions.",
        {"ip": ["192.168.1.105"]},
        ["was used for the 3D reconstructions"],
    ),
    ("Reading station IP 172.16.254.3", {"ip": ["172.16.254.3"]}, []),
    ("AE title PACS01 at 10.120.4.77:104", {"ip": ["10.120.4.77"]}, []),
    ("Source host fe80::1ff:fe23:4567:890a", {"ip": ["fe80::1ff:fe23:4567:890a"]}, []),
    ("Received from 203.0.113.25 after hours.", {"ip": ["203.0.113.25"]}, []),
]

INSTITUTIONS: list[Entry] = [
    (
        "Comparison with outside films from Massachusetts General Hospital.",
        {"institution": ["Massachusetts General Hospital"]},
        [],
    ),
    (
        "Transferred from St. Mary's Medical Center for ECMO evaluation.",
        {"institution": ["St. Mary's Medical Center"]},
        ["for ECMO evaluation"],
    ),
    (
        "Outside CT from Mercy Regional Hospital was reviewed.",
        {"institution": ["Mercy Regional Hospital"]},
        [],
    ),
    (
        "The patient was previously treated at Hôpital Saint-Antoine.",
        {"institution": ["Hôpital Saint-Antoine"]},
        [],
    ),
    (
        "Referred by Riverside Community Clinic for abnormal chest radiograph.",
        {"institution": ["Riverside Community Clinic"]},
        ["for abnormal chest radiograph"],
    ),
    (
        "Prior study performed at Kaiser Permanente Oakland.",
        {"institution": ["Kaiser Permanente Oakland"]},
        [],
    ),
    (
        "Second read requested by Brigham and Women's Hospital.",
        {"institution": ["Brigham and Women's Hospital"]},
        [],
    ),
    (
        "Outside images from University of Michigan Health System loaded to PACS.",
        {"institution": ["University of Michigan Health System"]},
        [],
    ),
    (
        "Guy's and St Thomas' NHS Foundation Trust, Department of Radiology.",
        {"institution": ["Guy's and St Thomas' NHS Foundation Trust"]},
        [],
    ),
    (
        "Transferred from Children's Hospital of Philadelphia.",
        {"institution": ["Children's Hospital of Philadelphia"]},
        [],
    ),
    (
        "Initial film obtained at Lakeview Urgent Care.",
        {"institution": ["Lakeview Urgent Care"]},
        [],
    ),
    ("Comparison: CT from Cedars-Sinai.", {"institution": ["Cedars-Sinai"]}, []),
    (
        "Seen at Northside Family Practice last week for cough.",
        {"institution": ["Northside Family Practice"]},
        [],
    ),
    (
        "Outside radiographs from Johns Hopkins Bayview were reviewed.",
        {"institution": ["Johns Hopkins Bayview"]},
        [],
    ),
    (
        "Images courtesy of Apollo Hospitals, Chennai.",
        {"institution": ["Apollo Hospitals"], "address": ["Chennai"]},
        [],
    ),
    (
        "Patient transferred from Royal Prince Alfred Hospital ICU.",
        {"institution": ["Royal Prince Alfred Hospital"]},
        [],
    ),
]

DEVICES: list[Entry] = [
    (
        "Dual-chamber pacemaker, serial number PJN402881H, with leads in the right atrium and ventricle.",
        {"device_serial": ["PJN402881H"]},
        ["with leads in the right atrium and ventricle"],
    ),
    ("Portable detector S/N: 7842-AX-991", {"device_serial": ["7842-AX-991"]}, []),
    (
        "Left chest ICD (SN 4471092) with intact lead.",
        {"device_serial": ["4471092"]},
        ["with intact lead"],
    ),
    ("Generator serial # ABC1234567 per the device clinic.", {"device_serial": ["ABC1234567"]}, []),
    ("Implanted port, lot number 2210-55A.", {"device_serial": ["2210-55A"]}, []),
    (
        "Device UDI (01)00643169001763(17)240101 recorded in the chart.",
        {"device_serial": ["00643169001763"]},
        [],
    ),
    (
        "DR portable unit serial no. DRX-00451 used for this exam.",
        {"device_serial": ["DRX-00451"]},
        [],
    ),
]

LICENSES: list[Entry] = [
    ("Interpreting radiologist license #: MA-123456", {"license": ["MA-123456"]}, []),
    ("DEA # AB1234563", {"license": ["AB1234563"]}, []),
    ("Ordering provider NPI 1234567893.", {"license": ["1234567893"]}, []),
    (
        "Driver's license S123-4567-8901 presented at registration.",
        {"license": ["S123-4567-8901"]},
        [],
    ),
    ("Medical license no. 0054321", {"license": ["0054321"]}, []),
    ("GMC 7012345 - consultant radiologist.", {"license": ["7012345"]}, []),
    (
        "Motor vehicle collision; license plate 8XKL552 noted by EMS.",
        {"license": ["8XKL552"]},
        ["Motor vehicle collision"],
    ),
    ("State license number RN2239105.", {"license": ["RN2239105"]}, []),
]

# Whole report snippets with several identifiers, the way they arrive from different systems.
MIXED: list[Entry] = [
    (
        "EXAMINATION: CHEST (PORTABLE AP)\nPatient: WHITAKER^LOUISE  MRN: 3320187  DOB: 02/11/1928\n"
        "FINDINGS: Right IJ line tip in the SVC. No pneumothorax.\nIMPRESSION: Line in satisfactory position.",
        {"name": ["WHITAKER^LOUISE"], "mrn": ["3320187"], "date": ["02/11/1928"]},
        ["Right IJ line tip in the SVC. No pneumothorax.", "Line in satisfactory position."],
    ),
    (
        "FINDINGS: Moderate left effusion. Findings were discussed with Dr. Imogen Fairweather "
        "at 10:42 on 06/02/2022 by phone (617) 555-0190.",
        {"name": ["Imogen Fairweather"], "date": ["06/02/2022"], "phone": ["(617) 555-0190"]},
        ["Moderate left effusion."],
    ),
    (
        "Clinical details: 94 year old lady from Sunnybrook Nursing Home, fall. Reported by Dr K Osei, "
        "Consultant Radiologist, Leeds Teaching Hospitals NHS Trust.",
        {
            "age": ["94 year old"],
            "institution": ["Sunnybrook Nursing Home", "Leeds Teaching Hospitals NHS Trust"],
            "name": ["K Osei"],
        },
        [],
    ),
    (
        "IMPRESSION: 1. New right lower lobe consolidation. 2. Recommend follow-up. "
        "Signed: Harold Pemberton-Smythe, MD 11/22/2023 16:05",
        {"name": ["Harold Pemberton-Smythe"], "date": ["11/22/2023 16:05"]},
        ["1. New right lower lobe consolidation. 2. Recommend follow-up."],
    ),
    (
        "Acc: 77120943  Pt: GARCIA LOPEZ, MARIA  Ref: DR. ANAND\nNo acute cardiopulmonary abnormality.",
        {"accession": ["77120943"], "name": ["GARCIA LOPEZ, MARIA", "ANAND"]},
        ["No acute cardiopulmonary abnormality."],
    ),
    (
        "Patient Name: Tremaine Jackson  Account #: 55-01928  Admit: 2023-01-09\n"
        "FINDINGS: Enteric tube courses below the diaphragm.",
        {"name": ["Tremaine Jackson"], "account": ["55-01928"], "date": ["2023-01-09"]},
        ["Enteric tube courses below the diaphragm."],
    ),
    (
        "Comparison: 10/02/2023 from Beth Israel Deaconess. Findings discussed with Shira, the "
        "covering PA, at 3:10 PM.",
        {"date": ["10/02/2023"], "institution": ["Beth Israel Deaconess"], "name": ["Shira"]},
        [],
    ),
    (
        "History: 96F, resident of Oak Grove Manor, 44 Hillside Rd, Dover, NH 03820; fall.",
        {
            "age": ["96F"],
            "institution": ["Oak Grove Manor"],
            "address": ["44 Hillside Rd", "Dover"],
            "zip": ["03820"],
        },
        [],
    ),
]

# Identifiers that only the record's own RIS fields reveal (passed as known identifiers).
KNOWN: list[tuple[str, dict[str, list[str]], list[str], list[str]]] = [
    (
        "Compared with the prior study of Oyelaran, the effusion is smaller.",
        {"name": ["Oyelaran"]},
        ["the effusion is smaller"],
        ["OYELARAN^TUNDE", "8812034"],
    ),
    (
        "Tunde reports improvement of his dyspnea.",
        {"name": ["Tunde"]},
        ["reports improvement of his dyspnea"],
        ["OYELARAN^TUNDE"],
    ),
    (
        "Study 8812034 reviewed; heart size is normal.",
        {"mrn": ["8812034"]},
        ["heart size is normal"],
        ["OYELARAN^TUNDE", "8812034"],
    ),
]

# Sentences that must come out byte-identical: no identifier in them.
CLINICAL: list[str] = [
    "There is a 3.2 x 2.1 cm mass in the right upper lobe.",
    "A 5 mm nodule is noted in the left lower lobe, unchanged.",
    "Mild compression deformity of T4 is unchanged.",
    "Degenerative disc disease at L1-L2 with anterior osteophytes.",
    "The C7 transverse processes are elongated.",
    "Healing fractures of the right 9-10-11 ribs laterally.",
    "Old fracture of the posterior left 9th rib.",
    "Acute displaced fractures of the left 5th through 7th ribs.",
    "MR Imaging of the thoracic spine is recommended for further evaluation.",
    "DR Portable AP upright view of the chest.",
    "CR chest, single frontal view.",
    "CT chest without contrast demonstrates emphysema.",
    "Chest, 2 views, frontal and lateral.",
    "PA and lateral views of the chest were obtained.",
    "The right middle lobe is collapsed.",
    "Lingular atelectasis is noted.",
    "The ETT terminates 4 cm above the carina.",
    "NG tube tip is in the stomach.",
    "Swan-Ganz catheter tip is in the right main pulmonary artery.",
    "Right PICC line terminates in the mid SVC.",
    "Left chest wall pacemaker with leads in the right atrium and right ventricle.",
    "Right chest wall Port-A-Cath with tip at the cavoatrial junction.",
    "Kerley B lines are present at the lung bases.",
    "A wedge-shaped peripheral opacity (Hampton hump) is seen in the right lower lobe.",
    "Westermark sign is not present.",
    "Comparison: none.",
    "Comparison: None available.",
    "The heart size is at the upper limits of normal, cardiothoracic ratio 0.55.",
    "Lung volumes are low, approximately 40% reduced compared with the prior study.",
    "Oxygen saturation was 88% on room air.",
    "There is a small left pleural effusion.",
    "No focal consolidation, pleural effusion or pneumothorax.",
    "The mediastinal contours are within normal limits.",
    "Bibasilar opacities likely represent atelectasis.",
    "May represent early pneumonia in the appropriate clinical setting.",
    "Recommend follow-up chest radiograph in 6-8 weeks to document resolution.",
    "Per Fleischner Society guidelines, no follow-up is needed for this 4 mm nodule.",
    "Sternotomy wires are intact.",
    "Surgical clips in the right upper quadrant are noted.",
    "The endotracheal tube has been removed.",
    "Dobhoff tube tip projects over the gastric body.",
    "Right internal jugular central venous catheter tip at the cavoatrial junction.",
    "Left subclavian triple-lumen catheter in good position.",
    "Mild pulmonary vascular congestion without overt edema.",
    "Hyperinflated lungs with flattened hemidiaphragms consistent with COPD.",
    "Calcified granuloma in the left upper lobe.",
    "There is blunting of the right costophrenic angle.",
    "Elevation of the right hemidiaphragm is unchanged.",
    "Azygos fissure is a normal variant.",
    "Pectus excavatum deformity is noted.",
    "Scoliosis convex to the right centered at T8.",
    "Anterior wedging of the T11 and T12 vertebral bodies.",
    "No acute osseous abnormality.",
    "Aortic knob calcification.",
    "Tortuous thoracic aorta.",
    "Left ventricular assist device is in place.",
    "Impella device terminates in the left ventricle.",
    "Intra-aortic balloon pump tip is 2 cm below the top of the aortic arch.",
    "Chest tube on the left with tip at the apex; no residual pneumothorax.",
    "Pigtail catheter in the right pleural space.",
    "Tracheostomy tube is midline.",
    "Loop recorder projects over the left chest.",
    "AICD with a single lead in the right ventricle.",
    "Bilateral breast implants.",
    "Right upper lobe cavitary lesion measuring 2.4 cm.",
    "Interval decrease in size of the right pleural effusion, now small.",
    "Stable 8 mm right middle lobe nodule since the prior exam.",
    "Small hiatal hernia.",
    "Air-fluid level in the esophagus.",
    "Free air under the right hemidiaphragm.",
    "Chilaiditi sign with colon interposed under the right hemidiaphragm.",
    "Ground-glass opacities in both lower lobes.",
    "Reticular opacities at the bases consistent with fibrosis.",
    "Honeycombing in the subpleural lower lobes.",
    "Lungs are hyperexpanded but clear.",
    "The trachea is midline.",
    "Cardiomediastinal silhouette is stable.",
    "Heart size normal. Lungs clear. No effusion.",
    "Pulmonary arteries are enlarged, main PA 3.4 cm.",
    "Diffuse bilateral airspace disease consistent with ARDS.",
    "Findings are consistent with CHF.",
    "Status post CABG with median sternotomy.",
    "Status post left upper lobectomy.",
    "Status post TAVR.",
    "Post-procedure radiograph after right thoracentesis of 1.2 L.",
    "1. No acute cardiopulmonary process. 2. Stable cardiomegaly.",
    "Impression: Normal chest.",
    "Technique: Single portable view of the chest at 45 degrees.",
    "The NG tube should be advanced by 10 cm.",
    "ET tube 5.5 cm above the carina, recommend withdrawal by 2 cm.",
    "Two views of the chest; lateral view limited by motion.",
    "67-year-old man with cough and fever.",
    "45 year old female, preoperative evaluation.",
    "History: 82 yo with dyspnea.",
    "Mild degenerative changes of the thoracic spine at T6-T9.",
    "Cervical fusion hardware at C5-C6 is partially imaged.",
    "Nipple shadows project over the lower lungs.",
    "Apical lordotic view was obtained.",
    "Left lateral decubitus view shows layering effusion.",
    "Expiratory view shows no pneumothorax.",
    "A 1.5 x 1.2 x 1.0 cm lymph node in the AP window.",
    "Pulmonary embolism protocol CT is recommended if clinical suspicion persists.",
    "The Swan-Ganz catheter has been removed.",
    "Hampton hump and Westermark sign suggest pulmonary infarction.",
    "Deep sulcus sign suggests anterior pneumothorax on this supine film.",
    "Silhouette sign at the right heart border indicates right middle lobe disease.",
    "Golden S sign raises concern for a central obstructing mass.",
    "Pancoast tumor of the left apex with rib destruction.",
    "Poland syndrome with absent left pectoralis muscle.",
    "Morgagni hernia at the right cardiophrenic angle.",
    "Bochdalek hernia on the left.",
    "Kartagener syndrome with dextrocardia and bronchiectasis.",
    "Findings were discussed with the referring team.",
    "Results were communicated to the ordering physician by telephone.",
    "Findings discussed with the patient's nurse.",
    "The patient is status post cardiac surgery 3 days ago.",
    "Comparison is made to the study from 2 days prior.",
    "Unchanged from yesterday.",
    "The lateral view was repeated due to rotation.",
    "Heart size is mildly enlarged, unchanged from 2019.",
    "ICU portable film at 0600.",
    "MRI of the chest wall may be helpful.",
    "SPECT imaging is not indicated.",
    "Follow-up PET-CT in 3 months.",
    "Gallstones are incidentally noted.",
    "Mach band effect simulates a pneumothorax.",
    "Bovine arch variant.",
    "Mitral annular calcification.",
    "Prosthetic aortic valve (St. Jude) is in place.",
    "Greenfield filter in the IVC.",
    "Spinal cord stimulator leads in the thoracic spinal canal.",
    "Vagal nerve stimulator in the left neck.",
    "Sengstaken-Blakemore tube in the esophagus.",
    "Jackson-Pratt drain in the right chest.",
    "Foley catheter is partially imaged.",
    "Hickman catheter tip in the right atrium.",
    "Please see the CT report for details.",
    "Osteopenia.",
]


def _check(text: str, identifiers: dict[str, list[str]], keep: list[str]) -> None:
    for values in identifiers.values():
        for value in values:
            assert value in text, f"{value!r} not in {text!r}"
    for value in keep:
        assert value in text, f"{value!r} not in {text!r}"


def _listed(identifiers: dict[str, list[str]]) -> list[dict[str, str]]:
    return [
        {"kind": kind, "text": value} for kind, values in identifiers.items() for value in values
    ]


def entries() -> list[dict]:
    """The corpus, one dict per line of the JSONL file."""
    out: list[dict] = []
    groups = [NAMES, DATES, AGES, PHONES, FAXES, EMAILS, ADDRESSES, ZIPS, MRNS, ACCESSIONS, SSNS,
              HEALTH_PLANS, ACCOUNTS, URLS, IPS, INSTITUTIONS, DEVICES, LICENSES, MIXED]  # fmt: skip
    for group in groups:
        for text, identifiers, keep in group:
            _check(text, identifiers, keep)
            out.append({"text": text, "identifiers": _listed(identifiers), "keep": keep})
    for text, identifiers, keep, known in KNOWN:
        _check(text, identifiers, keep)
        out.append(
            {
                "text": text,
                "identifiers": _listed(identifiers),
                "keep": keep,
                "known_identifiers": known,
            }
        )
    for text in CLINICAL:
        out.append({"text": text, "identifiers": [], "keep": []})
    for i, entry in enumerate(out):
        entry["id"] = f"{'phi' if entry['identifiers'] else 'clinical'}-{i:03d}"
    return out


def main() -> None:
    corpus = entries()
    with OUT.open("w") as handle:
        for entry in corpus:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    phi = [e for e in corpus if e["identifiers"]]
    n_ids = sum(len(e["identifiers"]) for e in phi)
    print(
        f"{OUT}: {len(phi)} identifier entries ({n_ids} identifiers), {len(corpus) - len(phi)} clinical"
    )


if __name__ == "__main__":
    main()
