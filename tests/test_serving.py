"""`keras-sentiment serve` as a real process on a loopback port, driven over real HTTP."""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import keras_sentiment as ks
from keras_sentiment.apps.client import ServingError, predict

ODD_TEXTS = ["", "   \n\t ", "😀😀 great", "סרט נהדר وممتاز", "ctrl \x00\x01\x1b[31m good", "good " * 200_000]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(served_base, tmp_path_factory):
    yield from start_server(served_base, tmp_path_factory)


def start_server(served_base, tmp_path_factory, *flags):
    """`keras-sentiment serve` on a copy of `served_base` (model name "tiny"): yields (url, base, process)."""
    base = tmp_path_factory.mktemp("serve") / "tiny"
    shutil.copytree(served_base, base)
    port = free_port()
    log = open(base.parent / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_sentiment.apps.cli", "serve", "--model-base", base, "--model-name", "tiny",
         "--port", str(port), "--poll-seconds", "1", *flags],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if request("GET", url, "/v1/models/tiny")[0] == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("server did not start: " + (base.parent / "server.log").read_text()[-3000:])
    yield url, base, process
    process.terminate()
    process.wait(timeout=30)
    log.close()


def request(method, url, path, body=None, headers=None):
    """`(status, parsed JSON)` of one request; `body` may be an object (sent as JSON) or bytes."""
    connection = http.client.HTTPConnection(url.split("//")[1], timeout=60)
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, json.loads(payload)


def test_status_and_metadata_have_tf_servings_shape(server):
    url, _, _ = server
    assert request("GET", url, "/v1/models/tiny") == (200, {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]})
    assert request("GET", url, "/v1/models/tiny/versions/1")[0] == 200
    status, metadata = request("GET", url, "/v1/models/tiny/metadata")
    assert status == 200
    assert metadata["model_spec"] == {"name": "tiny", "signature_name": "", "version": "1"}
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["text"]["dtype"] == "DT_STRING"
    assert {k: v["dtype"] for k, v in signature["outputs"].items()} == {
        "probability": "DT_FLOAT", "label": "DT_INT32", "logits": "DT_FLOAT", "scores": "DT_FLOAT", "classes": "DT_STRING"}
    assert signature["method_name"] == "tensorflow/serving/predict"


def test_row_and_columnar_predictions_match_the_model(server, served_base):
    url, _, _ = server
    texts = ["a great and wonderful film", "awful, boring, terrible"]
    predictions = ks.load(served_base).predict(texts)
    expected = [p["scores"]["positive"] for p in predictions]
    assert [p["label"] for p in predictions] == ["positive", "negative"]
    status, rows = request("POST", url, "/v1/models/tiny:predict", {"instances": texts})
    assert status == 200 and [sorted(r) for r in rows["predictions"]] == [["classes", "label", "logits", "probability", "scores"]] * 2
    assert rows["predictions"][0]["classes"] == ["negative", "positive"]
    np.testing.assert_allclose([r["probability"] for r in rows["predictions"]], expected, atol=1e-5)
    assert [r["label"] for r in rows["predictions"]] == [1, 0]
    status, named = request("POST", url, "/v1/models/tiny/versions/1:predict", {"instances": [{"text": t} for t in texts]})
    assert status == 200 and named == rows
    status, columns = request("POST", url, "/v1/models/tiny:predict", {"inputs": {"text": texts}})
    assert status == 200 and columns["outputs"]["label"] == [1, 0]
    np.testing.assert_allclose(columns["outputs"]["probability"], expected, atol=1e-5)
    assert request("POST", url, "/v1/models/tiny:predict", {"inputs": texts})[1] == columns


def test_explain_takes_predicts_request_shape_and_equals_the_exports_signature(server, served_base):
    url, _, _ = server
    texts = ["a great and wonderful film", "awful, boring, terrible"]
    status, rows = request("POST", url, "/v1/models/tiny:explain", {"instances": texts})
    assert status == 200
    for row, expected in zip(rows["predictions"], ks.load(served_base).explain(texts)):
        assert [t for t in row["tokens"] if t] == [t.token for t in expected.tokens]
        np.testing.assert_allclose([a for t, a in zip(row["tokens"], row["attributions"]) if t],
                                   [t.attribution for t in expected.tokens], atol=1e-5)
        assert abs(row["probability"] - expected.probability) < 1e-5
    # TF Serving's own way to reach a second signature gives the same answer.
    assert request("POST", url, "/v1/models/tiny:predict", {"instances": texts, "signature_name": "explain"})[1] == rows
    status, columns = request("POST", url, "/v1/models/tiny/versions/1:explain", {"inputs": {"text": texts}})
    assert status == 200 and columns["outputs"]["tokens"] == [row["tokens"] for row in rows["predictions"]]
    assert request("POST", url, "/v1/models/tiny:explain", {"instances": []}) == (200, {"predictions": []})
    status, body = request("POST", url, "/v1/models/tiny:explain", {"instances": ["x"] * 33})
    assert status == 400 and "limit is 32 per request (--max-explain-batch)" in body["error"]
    status, body = request("POST", url, "/v1/models/tiny:explain", {"instances": ["x"], "signature_name": "serving_default"})
    assert status == 400 and "not found in signature def" in body["error"]


def test_explain_takes_the_class_to_explain_per_text(server, served_base):
    url, _, _ = server
    texts = ["a great and wonderful film", "awful, boring, terrible"]
    _, default = request("POST", url, "/v1/models/tiny:explain", {"instances": texts})
    status, rows = request("POST", url, "/v1/models/tiny:explain", {"instances": [
        {"text": texts[0], "class_name": "negative"}, {"text": texts[1]}]})  # the second: the default class
    assert status == 200
    first, second = rows["predictions"]
    assert (first["class_id"], first["label"], second["class_id"], second["label"]) == (0, 1, 1, 0)
    # Two classes: the first class's logit is the one logit negated, and so is every attribution.
    np.testing.assert_allclose(first["attributions"], -np.asarray(default["predictions"][0]["attributions"]), atol=1e-5)
    assert abs(first["probability"] + default["predictions"][0]["probability"] - 1) < 1e-5
    assert second == default["predictions"][1]
    expected = ks.load(served_base).explain(texts[:1], class_name="negative")[0]
    np.testing.assert_allclose([a for t, a in zip(first["tokens"], first["attributions"]) if t],
                               [t.attribution for t in expected.tokens], atol=1e-5)
    status, columns = request("POST", url, "/v1/models/tiny:explain",
                              {"inputs": {"text": texts, "class_name": ["negative", ""]}})
    assert status == 200 and columns["outputs"]["class_id"] == [0, 1]
    status, body = request("POST", url, "/v1/models/tiny:explain", {"instances": [{"text": "x", "class_name": "joy"}]})
    assert status == 400 and "class_name 'joy': not a class of this model; its classes are negative, positive" in body["error"]
    status, body = request("POST", url, "/v1/models/tiny:predict", {"instances": [{"text": "x", "class_name": "negative"}]})
    assert status == 400 and "expected {'text'}" in body["error"]


def test_the_demo_page_and_its_files_are_served(server):
    url, _, _ = server
    connection = http.client.HTTPConnection(url.split("//")[1], timeout=60)
    for path, kind, content in [("/", "text/html", 'data-model="tiny"'), ("/demo/demo.js", "text/javascript", ":explain"),
                                ("/demo/demo.css", "text/css", "--positive")]:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200 and response.getheader("content-type").startswith(kind), path
        assert content in body and "http://" not in body and "https://" not in body, path  # nothing from the network
    connection.request("GET", "/demo/../serving.py")
    response = connection.getresponse()
    response.read()
    assert response.status == 404
    connection.close()


def test_odd_but_valid_texts_get_predictions(server, served_base):
    url, _, _ = server
    expected = [p["scores"]["positive"] for p in ks.load(served_base).predict(ODD_TEXTS)]
    status, body = request("POST", url, "/v1/models/tiny:predict", {"instances": ODD_TEXTS})
    assert status == 200 and len(body["predictions"]) == len(ODD_TEXTS)
    np.testing.assert_allclose([p["probability"] for p in body["predictions"]], expected, atol=1e-5)
    assert request("POST", url, "/v1/models/tiny:predict", {"instances": []}) == (200, {"predictions": []})


@pytest.mark.parametrize("body, status, message", [
    (b"not json", 400, "JSON Parse error"),
    (b"\xff\xfe", 400, "JSON Parse error"),
    ([1, 2], 400, "JSON object"),
    ({}, 400, "Missing 'inputs' or 'instances'"),
    ({"instances": ["a"], "inputs": ["a"]}, 400, "Not both"),
    ({"instances": "one string"}, 400, "must be a list"),
    ({"instances": [None]}, 400, "instances[0]: expected a string, got null"),
    ({"instances": ["ok", 3]}, 400, "instances[1]: expected a string, got int"),
    ({"instances": [["nested"]]}, 400, "got list"),
    ({"instances": [{"txt": "x"}]}, 400, "expected {'text'}, got keys ['txt']"),
    ({"inputs": {"text": "x"}}, 400, "must be a list"),
    ({"inputs": {"words": ["x"]}}, 400, "must hold the input 'text', got ['words']"),
    ({"instances": ["x"], "signature_name": "other"}, 400, "not found in signature def"),
    ({"instances": ["x"] * 1025}, 400, "limit is 1024"),
    (b'{"instances": ["\\ud800"]}', 400, "surrogate"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
    (b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested too deeply"),
    (b'{"instances": [' + b"9" * 5000 + b"]}", 400, "JSON Parse error"),
])
def test_invalid_requests_get_4xx_and_the_server_stays_up(server, body, status, message):
    url, _, process = server
    got_status, got = request("POST", url, "/v1/models/tiny:predict", body)
    assert got_status == status and message in got["error"], got
    assert process.poll() is None
    assert request("POST", url, "/v1/models/tiny:predict", {"instances": ["fine"]})[0] == 200


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/v1/models/other", 404), ("POST", "/v1/models/other:predict", 404),
    ("POST", "/v1/models/tiny/versions/7:predict", 404), ("GET", "/v1/models/tiny/versions/x", 400),
    ("POST", "/v1/models/tiny:classify", 400), ("GET", "/v1/models/tiny:predict", 404), ("GET", "/nothing", 404),
])
def test_unknown_routes_models_and_versions(server, method, path, status):
    url, _, _ = server
    got_status, body = request(method, url, path, {"instances": ["x"]} if method == "POST" else None)
    assert got_status == status and body["error"]


def test_requests_over_8_mb_get_413(server):
    url, _, process = server
    big = {"instances": ["x" * (1024 * 1024)] * 9}
    status, body = request("POST", url, "/v1/models/tiny:predict", big)
    assert status == 413 and "limit" in body["error"]
    assert process.poll() is None


def test_client_predict_and_errors(server):
    url, _, _ = server
    results = predict(url, "tiny", ["wonderful", "dreadful", "superb"], batch_size=2)
    assert [r["label"] for r in results] == [1, 0, 1]
    assert all(0.0 <= r["probability"] <= 1.0 for r in results)
    with pytest.raises(ServingError, match="404.*Servable not found"):
        predict(url, "missing", ["x"])
    with pytest.raises(ServingError, match="cannot reach"):
        predict(f"http://127.0.0.1:{free_port()}", "tiny", ["x"], timeout=5)


def test_a_new_version_is_served_without_restart_and_removal_rolls_back(server):
    url, base, _ = server
    staging = base / ".staging"
    shutil.copytree(base / "1", staging)
    os.rename(staging, base / "2")  # as export_serving_model does: the version appears whole

    def served_version(expected, seconds=30):
        deadline = time.time() + seconds
        while time.time() < deadline:
            version = request("GET", url, "/v1/models/tiny")[1]["model_version_status"][0]["version"]
            if version == expected:
                return True
            time.sleep(0.5)
        return False

    assert served_version("2")
    assert request("POST", url, "/v1/models/tiny/versions/2:predict", {"instances": ["good"]})[0] == 200
    assert request("POST", url, "/v1/models/tiny/versions/1:predict", {"instances": ["good"]})[0] == 404
    (base / "3").mkdir()  # a broken version: the server keeps serving 2
    time.sleep(3)
    assert served_version("2", seconds=1)
    shutil.rmtree(base / "3")
    shutil.rmtree(base / "2")  # rollback
    assert served_version("1")


def test_serve_binds_loopback_by_default_and_reports_a_missing_base(tmp_path):
    from keras_sentiment.apps.cli import build_parser
    from conftest import cli

    args = build_parser().parse_args(["serve", "--model-base", "x"])
    assert args.host == "127.0.0.1" and args.port == 8501 and args.max_batch == 1024
    result = cli("serve", "--model-base", tmp_path / "nothing", cache=tmp_path / "cache")
    assert result.returncode == 2 and "no such model base" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "empty").mkdir()
    result = cli("serve", "--model-base", tmp_path / "empty", cache=tmp_path / "cache")
    assert result.returncode == 2 and "no loadable SavedModel version" in result.stderr


class FakeVersion:
    """Stands in for a loaded SavedModel: records each call's texts; 'probability' = len(text)."""

    def __init__(self, fail=False):
        self.calls, self.fail = [], fail

    def predict(self, texts):
        self.calls.append(list(texts))
        if self.fail:
            raise RuntimeError("model exploded")
        return {"probability": [float(len(t)) for t in texts], "label": [len(t) % 2 for t in texts]}


def run_batched(requests, max_texts=256, wait_seconds=0.01):
    """Send `requests` [(version, texts)] concurrently through a `RequestBatcher`; returns each answer or exception."""
    import asyncio

    from keras_sentiment.apps.serving import RequestBatcher

    async def in_thread(function, *args):
        return await asyncio.to_thread(function, *args)

    async def main():
        batcher = RequestBatcher(max_texts, wait_seconds)
        worker = asyncio.create_task(batcher.run(in_thread))
        answers = await asyncio.gather(*(batcher.predict(v, t) for v, t in requests), return_exceptions=True)
        worker.cancel()
        return answers

    return asyncio.run(main())


def test_the_batcher_merges_concurrent_requests_and_answers_each_with_its_own_rows():
    version = FakeVersion()
    requests = [(version, [f"text {i}" * (i + 1), "x" * i]) for i in range(20)]
    answers = run_batched(requests)
    for (_, texts), answer in zip(requests, answers):
        assert answer["probability"] == [float(len(t)) for t in texts]
    assert len(version.calls) < 20 and sum(map(len, version.calls)) == 40  # merged, every text once
    assert max(map(len, version.calls)) <= 256


def test_the_batcher_bounds_a_batch_keeps_versions_apart_and_passes_errors_to_every_request():
    version = FakeVersion()
    run_batched([(version, ["a"] * 3) for _ in range(10)], max_texts=8)
    assert max(map(len, version.calls)) <= 8 and sum(map(len, version.calls)) == 30
    old, new = FakeVersion(), FakeVersion()
    answers = run_batched([(old, ["a"]), (new, ["b"]), (old, ["c"])])
    assert all(isinstance(a, dict) for a in answers)
    assert all(set(call) <= {"a", "c"} for call in old.calls) and new.calls == [["b"]]
    broken = FakeVersion(fail=True)
    answers = run_batched([(broken, ["a"]), (broken, ["b"])])
    assert all(isinstance(a, RuntimeError) and "exploded" in str(a) for a in answers)
