"""A small client for TF Serving's REST predict API: `keras-sentiment serve` or real TF Serving.

Standard library only (no TensorFlow import), so it fits in any application. `BertTokenIds`,
for BERT exports made with `--no-tokenizer`, needs keras-hub (any Keras backend; no TF Text).
"""

import json
import urllib.error
import urllib.request

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.core.wordpiece import BertTokenIds

__all__ = ["predict", "ServingError", "BertTokenIds"]  # BertTokenIds: the ids a --no-tokenizer export takes


class ServingError(KerasSentimentError):
    """The server answered with an error (`status` is the HTTP status, 0 if unreachable)."""

    def __init__(self, status, message):
        self.status = status
        super().__init__(f"HTTP {status}: {message}" if status else message)


def predict(url, model, texts, version=None, batch_size=1024, timeout=60.0, tokenizer=None):
    """Predictions for `texts` from a TF-Serving-style server, one dict per text, in order.

    Each dict holds the serving signature's outputs: `scores` (the class probabilities), `classes`
    (their names), `label` (the predicted class id) and `logits`; a two-class export also gives
    `probability` (P(positive) for sentiment). Texts are sent `batch_size` per request (the
    server's `--max-batch` defaults to 1024).

    Args:
        url: server root, e.g. `http://127.0.0.1:8501`.
        model: model name (`/v1/models/<model>`).
        texts: a list of strings.
        version: an integer version to pin; default the server's latest.
        batch_size: texts per request.
        timeout: seconds to wait for each response.
        tokenizer: for an export made with `--no-tokenizer`, a `BertTokenIds`: the texts are
            sent as token ids.

    Example:
    >>> predict("http://127.0.0.1:8501", "imdb_bigru", ["A wonderful film."])  # doctest: +SKIP
    [{'classes': ['negative', 'positive'], 'label': 1, 'logits': 2.93, 'probability': 0.949, 'scores': [0.051, 0.949]}]
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    endpoint = f"{url.rstrip('/')}/v1/models/{model}" + (f"/versions/{int(version)}" if version is not None else "")
    results = []
    texts = list(texts)
    for start in range(0, len(texts), batch_size):
        instances = texts[start : start + batch_size]
        if tokenizer is not None:
            instances = tokenizer(instances)
        body = json.dumps({"instances": instances}).encode("utf-8")
        response = _post_json(f"{endpoint}:predict", body, timeout)
        predictions = response.get("predictions")
        if not isinstance(predictions, list):
            raise ServingError(0, f"unexpected response from {endpoint}: {str(response)[:200]}")
        results.extend(predictions)
    return results


def _post_json(url, body, timeout):
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        payload = error.read()
        try:
            message = json.loads(payload)["error"]
        except (ValueError, KeyError, TypeError):
            message = payload.decode("utf-8", errors="replace")[:500] or error.reason
        raise ServingError(error.code, message) from None
    except urllib.error.URLError as error:
        raise ServingError(0, f"cannot reach {url}: {error.reason}") from None


