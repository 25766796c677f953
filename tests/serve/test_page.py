"""The web page in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium with that driver: nothing is downloaded) types a text, presses Tag and reads
each word's tag off the page, its probability and hover text, and the CoNLL-U it offers."""

from __future__ import annotations

import shutil
import threading

import pytest

from serving import demo_tagger  # noqa: F401 -- fixtures (skips without the serve extra)

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip("no chromium or chromedriver here: apt-get install chromium chromium-driver (.ci/run does)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")

import uvicorn  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from lstm_tagger.serve.app import create_app  # noqa: E402
from lstm_tagger.serve.server import bind  # noqa: E402

TEXT = "Don't stop. The dog ate the apple"
WAIT_SECONDS = 120  # a bound on waiting for the page, never an assertion


@pytest.fixture(scope="module")
def address(demo_tagger) -> str:
    """The application on a free loopback port, served by uvicorn in a thread of this process."""
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app({"demo": demo_tagger}), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join()
    sock.close()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


def test_the_page_tags_typed_text_and_offers_its_conllu(address, browser, demo_tagger):
    browser.get(address + "/")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    wait.until(lambda driver: Select(driver.find_element(By.ID, "model")).options)
    assert Select(browser.find_element(By.ID, "model")).first_selected_option.text == "demo"
    browser.find_element(By.ID, "text").send_keys(TEXT)
    browser.find_element(By.ID, "scores").click()
    browser.find_element(By.ID, "tag").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#download:not(.disabled)")))

    doc = demo_tagger(TEXT, scores=True)
    shown = [
        [(word.find_element(By.CLASS_NAME, "form").text, word.get_attribute("data-upos")) for word in sentence.find_elements(By.CLASS_NAME, "word")]
        for sentence in browser.find_elements(By.CLASS_NAME, "sentence")
    ]
    assert shown == [[(word.form, word.upos) for word in sentence.words] for sentence in doc.sentences]
    first = browser.find_elements(By.CLASS_NAME, "word")[0]
    probability = doc.sentences[0].words[0].scores["upos"][doc.sentences[0].words[0].upos]
    assert first.find_element(By.CLASS_NAME, "prob").text == f"{probability:.3f}"
    assert first.get_attribute("title").startswith(f"UPOS: {doc.sentences[0].words[0].upos} ({probability:.3f})")
    assert f"upos-{doc.sentences[0].words[0].upos}" in first.get_attribute("class")  # its tag's colour

    conllu = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(document.getElementById('download').href).then((r) => r.text()).then(done);"
    )
    assert conllu == doc.to_conllu()
    assert browser.find_element(By.ID, "download").get_attribute("download") == "tagged.conllu"


def test_the_page_shows_a_refusal_as_one_line(address, browser):
    browser.get(address + "/")
    wait = WebDriverWait(browser, WAIT_SECONDS)
    wait.until(lambda driver: Select(driver.find_element(By.ID, "model")).options)
    browser.execute_script("document.getElementById('model').add(new Option('nope', 'nope'), null);")
    Select(browser.find_element(By.ID, "model")).select_by_value("nope")
    browser.find_element(By.ID, "text").send_keys("The dog")
    browser.find_element(By.ID, "tag").click()
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#status.error")))
    assert browser.find_element(By.ID, "status").text == "model 'nope' is not served here: the models are 'demo'"
