"""The try-it page in a real headless Chromium (Debian's `chromium` and `chromium-driver`) against
the real `bentoml serve`: a person uploads a DICOM and a PNG, sees every finding of each, opens a
finding's map; with UMCL_API_KEY set, the page works once the key is typed and says so before.
A screenshot of each run is kept in test-artifacts/ (git-ignored)."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, saved_random_model, toy_calibration
from tests.serving import served, small_png
from umcl import registry

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"

pytestmark = pytest.mark.skipif(
    CHROMEDRIVER is None or CHROMIUM is None,
    reason="needs Chromium and its driver (Debian: apt install chromium chromium-driver; "
    ".ci/run installs them where it may)",
)


@pytest.fixture(scope="module")
def tag(tiny_pipeline: dict, tmp_path_factory: pytest.TempPathFactory) -> str:
    labels = json.loads((tiny_pipeline["triplets"].parent / "labels.json").read_text())["names"]
    model = saved_random_model(
        tiny_pipeline,
        tmp_path_factory.mktemp("page") / "model",
        seed=8,
        calibration=toy_calibration(labels),
    )
    entry, _ = registry.add(model, {"test": True})
    return entry.tag


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def upload(driver, url: str, files: list[Path], key: str | None = None) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/ui")
    if key:
        driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "files").send_keys("\n".join(str(f) for f in files))
    WebDriverWait(driver, 120).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-done") == str(len(files))
    )


@pytest.mark.parametrize("with_key", [False, True], ids=["no key", "UMCL_API_KEY"])
def test_a_person_uploads_a_dicom_and_a_png_sees_every_finding_and_opens_a_map(
    tag: str, tiny_pipeline: dict, tmp_path: Path, with_key: bool
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    dicom = next((tiny_pipeline["root"] / "raw/demo/mimic/files").rglob("*.dcm"))
    png = tmp_path / "film.png"
    png.write_bytes(small_png(3, (90, 70)))
    labels = json.loads((tiny_pipeline["triplets"].parent / "labels.json").read_text())["names"]
    key = secrets.token_urlsafe(24) if with_key else None
    env = {"UMCL_MODEL": tag, "UMCL_MONITOR": "off"} | ({"UMCL_API_KEY": key} if key else {})
    ARTIFACTS.mkdir(exist_ok=True)
    driver = browser()
    try:
        with served(env, tmp_path / "serve.log") as server:
            if key:  # without the key the page says what is missing
                upload(driver, server.url, [png])
                card = driver.find_element(By.CSS_SELECTOR, ".card .error")
                assert "API key" in card.text, card.text
            upload(driver, server.url, [dicom, png], key)
            cards = driver.find_elements(By.CSS_SELECTOR, ".card")[-2:]
            assert [c.get_attribute("data-file") for c in cards] == [dicom.name, png.name]
            for card in cards:
                rows = card.find_elements(By.CSS_SELECTOR, "tr.finding")
                assert sorted(r.get_attribute("data-finding") for r in rows) == sorted(labels)
                shown = [
                    float(r.find_elements(By.TAG_NAME, "td")[1].text.rstrip(" %")) for r in rows
                ]
                assert shown == sorted(shown, reverse=True)  # by probability
                first = rows[0].get_attribute("data-finding")
                rows[0].click()
                WebDriverWait(driver, 60).until(
                    lambda d, card=card, first=first: card.get_attribute("data-shown") == first
                )
                assert "Map: " in card.find_element(By.CSS_SELECTOR, ".map-caption").text
                # The map is drawn over the image: the canvas is not plain grey any more.
                coloured = driver.execute_script(
                    "const c = arguments[0].querySelector('canvas');"
                    "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                    "for (let i = 0; i < d.length; i += 4) {"
                    "  if (d[i] !== d[i + 1] || d[i + 1] !== d[i + 2]) return true; }"
                    "return false;",
                    card,
                )
                assert coloured
            driver.save_screenshot(str(ARTIFACTS / f"page-{'key' if key else 'open'}.png"))
    finally:
        driver.quit()
