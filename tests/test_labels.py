import numpy as np
import pytest

from umcl.config import LabelSettings
from umcl.labels import CHEXPERT_LABELS, LabelSpace, apply_uncertainty, strongest


def test_default_space_is_the_14_chexpert_observations():
    assert len(CHEXPERT_LABELS) == 14
    assert CHEXPERT_LABELS[0] == "No Finding" and CHEXPERT_LABELS[-1] == "Support Devices"


@pytest.mark.parametrize(
    ("source_name", "label"),
    [
        ("Effusion", "Pleural Effusion"),
        ("Nodule", "Lung Lesion"),
        ("Mass", "Lung Lesion"),
        ("Infiltration", "Lung Opacity"),
        ("normal", "No Finding"),
        ("NORMAL", "No Finding"),
        ("PNEUMONIA", "Pneumonia"),
        ("pleural_thickening", "Pleural Other"),
        ("Hernia", None),
    ],
)
def test_synonyms_map_by_name(source_name, label):
    assert LabelSpace().resolve(source_name) == label


def test_columns_map_by_name_not_position():
    chexpert_csv_order = ["Path", "Lung Opacity", "Lung Lesion", "Effusion"]
    mapping = LabelSpace().map_columns(chexpert_csv_order)
    assert mapping == {
        "Lung Opacity": ["Lung Opacity"],
        "Lung Lesion": ["Lung Lesion"],
        "Pleural Effusion": ["Effusion"],
    }


def test_synonyms_from_params_and_bad_targets():
    space = LabelSpace.from_settings(LabelSettings(synonyms={"Opacity": "Lung Opacity"}))
    assert space.resolve("opacity") == "Lung Opacity"
    with pytest.raises(ValueError, match="outside the label space"):
        LabelSpace.from_settings(LabelSettings(synonyms={"x": "Not A Label"}))


def test_uncertainty_policies():
    raw = np.array([[1, 0, -1, np.nan]], dtype=np.float32)
    np.testing.assert_array_equal(apply_uncertainty(raw, "zeros"), [[1, 0, 0, np.nan]])
    np.testing.assert_array_equal(apply_uncertainty(raw, "ones"), [[1, 0, 1, np.nan]])
    np.testing.assert_array_equal(apply_uncertainty(raw, "ignore"), [[1, 0, np.nan, np.nan]])


def test_strongest_statement_wins():
    assert strongest([0, -1]) == -1 and strongest([0, 1, -1]) == 1 and strongest([None, 0]) == 0
    assert strongest([None, None]) is None
