"""The learned vocabulary admits only what many patients' reports use."""

from umcl.model.tokenizer import train_wordpiece

COMMON = "no pleural effusion. heart size is normal."


def test_a_word_of_too_few_patients_never_becomes_a_token():
    texts = [COMMON] * 6 + ["discussed with gonzalez, user jdoe1987. ssn 078-05-1120."] * 4
    patients = ["a", "b", "c", "d", "e", "f", "g", "g", "h", "i"]  # the leak: 3 patients, 4 reports
    tokenizer = train_wordpiece(
        texts, 500, patients=patients, min_patients=5, required=["there is no"]
    )
    vocabulary = set(tokenizer.get_vocab())
    for leaked in ("gonzalez", "jdoe1987", "078", "1120", "user", "discussed"):
        assert leaked not in vocabulary
    assert {"pleural", "effusion", "heart", "there", "is", "no"} <= vocabulary
    pieces = tokenizer.tokenize("gonzalez")
    assert (
        len(pieces) == len("gonzalez") and "[UNK]" not in pieces
    )  # spelled out, character by character


def test_rare_characters_stay_out_too():
    texts = [COMMON] * 5 + ["herr straße"]  # ß survives lower-casing and accent stripping

    def vocabulary(min_patients: int) -> set[str]:
        return set(
            train_wordpiece(
                texts, 500, patients=list("abcdef"), min_patients=min_patients
            ).get_vocab()
        )

    assert {"ß", "##ß", "straße"} <= vocabulary(
        1
    )  # the same texts admit it when one patient is enough
    assert not {"ß", "##ß", "straße"} & vocabulary(2)
