"""The demo page of `keras-sentiment serve`, driven in a real headless browser (Chromium + Selenium).

`make setup` installs Debian's chromium and chromium-driver where they are missing; these tests
are skipped, saying why, only when no browser could be installed.
"""

import shutil

import numpy as np
import pytest

from test_own_data import make_rows
from test_serving import request, start_server

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[dev]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MAX_BATCH = 25  # the server's --max-batch here: the error test sends more

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no browser: install Debian's chromium and chromium-driver (make setup does, where apt-get is allowed)")


@pytest.fixture(scope="module")
def server(served_base, tmp_path_factory):
    yield from start_server(served_base, tmp_path_factory, "--max-batch", str(MAX_BATCH))


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1200,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(server, browser):
    """The page freshly loaded, once it shows the served version."""
    url, _, _ = server
    browser.get(url + "/")
    WebDriverWait(browser, 30).until(EC.text_to_be_present_in_element((By.ID, "model-version"), "1"))
    return browser


def wait_for(browser, condition, timeout=60):
    return WebDriverWait(browser, timeout).until(condition)


def test_the_page_names_the_model_and_version_served(page):
    assert page.find_element(By.ID, "model-name").text == "tiny"
    assert page.find_element(By.ID, "model-version").text == "1"
    assert "tiny" in page.title


def test_a_typed_review_shows_the_probability_and_words_the_rest_api_gives(page, server):
    url, _, _ = server
    review = "A wonderful film, though the ending was boring."
    page.find_element(By.ID, "text").send_keys(review)
    page.find_element(By.ID, "explain-button").click()
    wait_for(page, EC.visibility_of_element_located((By.ID, "result")))

    status, answer = request("POST", url, "/v1/models/tiny:explain", {"instances": [review]})
    assert status == 200
    expected = answer["predictions"][0]
    assert page.find_element(By.ID, "probability").text == f"{expected['probability']:.4f}"
    assert page.find_element(By.ID, "label").text == ("positive" if expected["probability"] >= 0.5 else "negative")
    spans = page.find_elements(By.CSS_SELECTOR, "#words .word")
    words = [(t, a) for t, a in zip(expected["tokens"], expected["attributions"]) if t]
    assert [span.text for span in spans] == [t for t, _ in words]
    np.testing.assert_allclose([float(span.get_attribute("data-attribution")) for span in spans],
                               [a for _, a in words], rtol=1e-6)
    # Colour follows the sign: green for the most positive word, red for the most negative.
    values = [a for _, a in words]
    most_positive, most_negative = spans[int(np.argmax(values))], spans[int(np.argmin(values))]
    assert "22, 163, 74" in most_positive.value_of_css_property("background-color")
    assert "220, 38, 38" in most_negative.value_of_css_property("background-color")
    assert most_positive.get_attribute("title").startswith("+")


def test_twenty_pasted_lines_become_twenty_sortable_rows_and_a_csv(page, server):
    url, _, _ = server
    lines = [f"review {i}: {'a great film' if i % 2 else 'an awful, boring film'}" for i in range(20)]
    page.find_element(By.ID, "tab-many").click()
    page.find_element(By.ID, "lines").send_keys("\n".join(lines))
    page.find_element(By.ID, "score-button").click()
    wait_for(page, lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#table tbody tr")) == 20)

    _, answer = request("POST", url, "/v1/models/tiny:predict", {"instances": lines})
    shown = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in page.find_elements(By.CSS_SELECTOR, "#table tbody tr")]
    assert [row[1] for row in shown] == lines
    assert [row[2] for row in shown] == [f"{p['probability']:.4f}" for p in answer["predictions"]]

    page.find_element(By.CSS_SELECTOR, "th[data-key='probability']").click()  # sort by probability, ascending
    ordered = [float(tr.find_elements(By.TAG_NAME, "td")[2].text)
               for tr in page.find_elements(By.CSS_SELECTOR, "#table tbody tr")]
    assert ordered == sorted(ordered) and ordered != [float(row[2]) for row in shown]
    page.find_element(By.CSS_SELECTOR, "th[data-key='probability']").click()  # and reversed
    reversed_order = [float(tr.find_elements(By.TAG_NAME, "td")[2].text)
                      for tr in page.find_elements(By.CSS_SELECTOR, "#table tbody tr")]
    assert reversed_order == sorted(ordered, reverse=True)

    csv_text = page.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(document.getElementById('download').href).then(r => r.text()).then(done);")
    csv_lines = csv_text.strip().split("\r\n")
    assert csv_lines[0] == "line,text,probability,label" and len(csv_lines) == 21
    assert csv_lines[1].startswith('1,"review 0: an awful, boring film",')  # quoted: it holds a comma


def test_the_servers_error_is_shown_on_the_page(page):
    page.find_element(By.ID, "tab-many").click()
    page.find_element(By.ID, "lines").send_keys("\n".join(f"line {i}" for i in range(MAX_BATCH + 5)))
    page.find_element(By.ID, "score-button").click()
    error = wait_for(page, EC.visibility_of_element_located((By.ID, "error")))
    assert f"holds {MAX_BATCH + 5} texts; the limit is {MAX_BATCH}" in error.text
    assert "400" in error.text
    assert not page.find_elements(By.CSS_SELECTOR, "#table tbody tr")


def test_the_page_merges_word_pieces_as_the_library_does(page):
    """demo.js keeps a twin of `explain.merge_word_pieces` (the served model here is recurrent, so the
    other tests never reach it): the same pieces give the same words and sums, padding ("") left out."""
    from keras_sentiment.core.explanation import TokenAttribution, merge_word_pieces

    pieces = [("[CLS]", 0.5), ("##oops", 0.0625), ("un", -0.25), ("##watch", -0.5), ("##able", -0.25),
              ("film", 0.125), ("[SEP]", 0.1)]
    tokens, attributions = [token for token, _ in pieces], [value for _, value in pieces]
    merged = page.execute_script("return mergeWordPieces(arguments[0], arguments[1]);",
                                 tokens + ["", ""], attributions + [0.0, 0.0])
    expected = merge_word_pieces([TokenAttribution(token, value) for token, value in pieces])
    assert [(word["token"], word["attribution"]) for word in merged] == [(w.token, w.attribution) for w in expected]
    assert [word["token"] for word in merged] == ["##oops", "unwatchable", "film"]


# === More than two classes: a bar per class, a column per class ===


@pytest.fixture(scope="module")
def three_class_server(tmp_path_factory):
    """`serve` of a small GRU trained on three generated classes (negative, neutral, positive)."""
    import keras
    import tensorflow as tf

    from keras_sentiment.core.recurrent import ModelConfig, build_model
    from keras_sentiment.core.vectorizer import TextEncoder, build_vectorizer
    from keras_sentiment.run.export import export_serving_model

    classes = ("negative", "neutral", "positive")
    keras.utils.set_random_seed(0)
    rows = make_rows(600)
    texts, labels = tf.constant([t for t, _ in rows]), tf.constant([classes.index(y) for _, y in rows])
    vectorizer = build_vectorizer(vocab_size=64)
    vectorizer.adapt(texts)
    encoder = TextEncoder(vectorizer, max_length=24)
    model = build_model("gru", ModelConfig(vocab_size=64, embedding_dim=8, hidden_dim=8, dropout=0.0, num_classes=3))
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(encoder(texts), labels, epochs=6, batch_size=32, verbose=0)
    base = tmp_path_factory.mktemp("three_classes") / "tiny"
    export_serving_model(model, encoder, base, class_names=classes)
    yield from start_server(base, tmp_path_factory)


def test_three_classes_show_a_bar_and_a_column_per_class(three_class_server, browser):
    url, _, _ = three_class_server
    browser.get(url + "/")
    wait_for(browser, EC.text_to_be_present_in_element((By.ID, "model-version"), "1"))
    review = "An okay, average film."
    browser.find_element(By.ID, "text").send_keys(review)
    browser.find_element(By.ID, "explain-button").click()
    wait_for(browser, EC.visibility_of_element_located((By.ID, "result")))

    status, answer = request("POST", url, "/v1/models/tiny:predict", {"instances": [review]})
    assert status == 200
    expected = answer["predictions"][0]
    assert expected["classes"][expected["label"]] == "neutral"  # the model learnt the task
    bars = browser.find_elements(By.CSS_SELECTOR, "#class-bars .class-bar")
    assert [bar.get_attribute("data-class") for bar in bars] == ["negative", "neutral", "positive"]
    assert [bar.find_element(By.CLASS_NAME, "class-score").text for bar in bars] == [f"{p:.4f}" for p in expected["scores"]]
    assert [bar.get_attribute("class") for bar in bars] == ["class-bar", "class-bar predicted", "class-bar"]
    assert browser.find_element(By.ID, "label").text == "neutral"
    assert browser.find_element(By.ID, "probability-of").text == "P(neutral) ="
    assert browser.find_element(By.ID, "probability").text == f"{expected['scores'][1]:.4f}"
    assert browser.find_element(By.ID, "towards").text == "neutral"

    browser.find_element(By.ID, "tab-many").click()
    lines = ["A great, superb film.", "An okay, average film.", "An awful, dreadful film."]
    browser.find_element(By.ID, "lines").send_keys("\n".join(lines))
    browser.find_element(By.ID, "score-button").click()
    wait_for(browser, lambda driver: len(driver.find_elements(By.CSS_SELECTOR, "#table tbody tr")) == 3)
    headers = [th.text.replace(" ▲", "") for th in browser.find_elements(By.CSS_SELECTOR, "#table th")]
    assert headers == ["#", "review", "P(negative)", "P(neutral)", "P(positive)", "label"]
    shown = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")]
    assert [row[-1] for row in shown] == ["positive", "neutral", "negative"]
    _, answer = request("POST", url, "/v1/models/tiny:predict", {"instances": lines})
    assert [row[2:5] for row in shown] == [[f"{p:.4f}" for p in prediction["scores"]] for prediction in answer["predictions"]]
