from umcl.data.deid import scrub_text
from umcl.data.reports import findings_and_impression


def test_header_fields_dates_phones_and_titled_names_are_scrubbed():
    report = (
        "Patient: Harriet Blackwood  MRN: 4829371  DOB: 03/14/1952\n"
        "Accession: ACC12345678  Date: 2021-05-02\n"
        "FINDINGS: Small effusion. Discussed with Dr. Ottilie Pemberton at (617) 555-0134 on March 4, 2021."
    )
    clean = scrub_text(report)
    for secret in ("Harriet", "Blackwood", "4829371", "03/14/1952", "ACC12345678", "2021-05-02",
                   "Ottilie", "Pemberton", "555-0134", "March 4"):  # fmt: skip
        assert secret not in clean, secret
    assert "Small effusion." in clean


def test_known_identifiers_are_removed_anywhere():
    clean = scrub_text(
        "Compared with prior study of Blackwood, no change.", ["BLACKWOOD^HARRIET", "7654321"]
    )
    assert "Blackwood" not in clean and "no change" in clean


def test_findings_and_impression_only():
    text = (
        "EXAMINATION: CHEST\nINDICATION: Cough.\nFINDINGS: Heart normal.\n\nIMPRESSION: 1. Normal."
    )
    assert findings_and_impression(text) == "Heart normal.\n1. Normal."
    assert findings_and_impression("Just narrative.") == "Just narrative."
