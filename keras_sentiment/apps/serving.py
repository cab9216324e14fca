"""A local REST endpoint speaking the part of TF Serving's REST API that clients use.

Routes (NAME is the model name, V a version number):

- `GET  /v1/models/NAME[/versions/V]`: version status, as TF Serving returns it.
- `GET  /v1/models/NAME[/versions/V]/metadata`: the signature defs, read from `saved_model.pb`.
- `POST /v1/models/NAME[/versions/V]:predict`: `{"instances": [...]}` (row format) returns
  `{"predictions": [{"scores", "classes", "label", "logits", "probability"}, ...]}` (the export's
  outputs: `probability` for two classes only); `{"inputs": ...}` (columnar) returns
  `{"outputs": {"scores": [...], "classes": [...], ...}}`. With
  `"signature_name": "explain"` it runs the export's `explain` signature instead, as TF Serving
  would: rows of `tokens`, `attributions`, `probability`, `logits`, `baseline_logits`, `steps`, `class_id`.
- `POST /v1/models/NAME[/versions/V]:explain`: the same as `:predict` with the `explain` signature
  (at most `max_explain_batch` texts: each costs dozens of model runs). An instance
  `{"text": ..., "class_name": "neutral"}` (or columnar `"class_name": [...]`) explains that class
  with the `explain_class` signature; without it, the default class (two classes: the second; more:
  the predicted one).
- `GET /`: the demo page (`keras_sentiment/demo/`: HTML, CSS, JS, no network), which calls the
  routes above.

Like TF Serving with its default version policy, the server holds the latest version under the
model base, polls the base and switches when a newer version appears or the served one is
removed (rollback). Every invalid request gets a 4xx with `{"error": "..."}`; the model runs in a
worker thread so one long request does not stall the event loop.

With batching on (`RequestBatcher`, like TF Serving's `--enable_batching`), concurrent predict
requests are merged into one model call: the texts waiting when the model is free, plus those that
arrive within `batch_wait_ms`, up to `max_server_batch` texts. One call for many small requests
costs far less CPU than one each (benchmarks/serve_load.py measures both).
"""

import asyncio
import html
import json
import logging
import re
from contextlib import asynccontextmanager
from pathlib import Path

import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from keras_sentiment.core.errors import KerasSentimentError
from keras_sentiment.run.litert import LiteRecurrence
from keras_sentiment.run.loading import load_saved_model
from keras_sentiment.run.rundir import (EXPLAIN_CLASS_SIGNATURE, EXPLAIN_SIGNATURE, SAVED_MODEL_FILE, existing_versions,
                                        read_class_names, takes_token_ids)

log = logging.getLogger("keras_sentiment.apps.serving")

GET_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<metadata>/metadata)?/?$")
POST_ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?:(?P<verb>[a-z]+)$")
SIGNATURE = "serving_default"
INPUT_NAME = "text"
CLASS_INPUT_NAME = "class_name"  # of the explain_class signature
DEMO_DIR = Path(__file__).parent / "demo"
DEMO_FILES = {"demo.css": "text/css", "demo.js": "text/javascript"}


class RequestError(Exception):
    """A request the client must fix: answered with `status` and `{"error": message}`."""
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class LoadedVersion:
    """One SavedModel version: its serving signature and its signature defs (for metadata)."""
    def __init__(self, path):
        self.path, self.version = Path(path), int(Path(path).name)
        if takes_token_ids(path):
            raise KerasSentimentError(
                f"{path} takes token ids (exported with --no-tokenizer, for servers without TensorFlow Text): serve it "
                "with TF Serving and send ids from keras_sentiment.apps.client.BertTokenIds, or export the run again "
                "without --no-tokenizer for `serve`")
        self.signatures = load_saved_model(path)[1].signatures
        self.signature = self.signatures[SIGNATURE]
        self.lite = LiteRecurrence.of(path, self.signatures)  # `serving_default` by LiteRT, where the export holds it
        self.class_names = read_class_names(path)
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((self.path / SAVED_MODEL_FILE).read_bytes())
        self.signature_defs = {
            name: json_format.MessageToDict(definition, preserving_proto_field_name=True)
            for name, definition in proto.meta_graphs[0].signature_def.items()
        }

    def predict(self, texts, signature=SIGNATURE, class_names=None):
        """Outputs (lists; strings decoded) of `signature` for a list of strings (and for `explain_class`, the
        class to explain per text); runs in a worker thread."""

        inputs = {"text": tf.constant(texts, tf.string)}
        if class_names is not None:
            inputs[CLASS_INPUT_NAME] = tf.constant(class_names, tf.string)
        run = self.lite if signature == SIGNATURE and self.lite is not None else self.signatures[signature]
        outputs = run(**inputs)
        return {name: decoded(tensor.numpy().tolist()) if tensor.dtype == tf.string else tensor.numpy().tolist()
                for name, tensor in outputs.items()}

    def output_names(self, signature=SIGNATURE):
        return list(self.signatures[signature].structured_outputs)


def decoded(values):
    """Nested lists of bytes -> of str (the explain signature's tokens)."""
    return [decoded(v) for v in values] if isinstance(values, list) else values.decode("utf-8", "replace")


class RequestBatcher:
    """Merges concurrent predict requests into one model call per batch; one batch runs at a time.

    Args:
        max_texts: most texts per model call (a single larger request runs alone).
        wait_seconds: after the first request of a batch, how long to wait for more.

    Example:
    >>> batcher = RequestBatcher(max_texts=256, wait_seconds=0.002)  # doctest: +SKIP
    >>> outputs = await batcher.predict(loaded_version, ["great film"])  # doctest: +SKIP
    """

    def __init__(self, max_texts, wait_seconds):
        self.max_texts, self.wait_seconds = max_texts, wait_seconds
        self.queue = asyncio.Queue()
        self.carried = None  # a request of another version (a switch happened): it starts the next batch

    async def predict(self, loaded, texts):
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((loaded, texts, future))
        return await future

    async def run(self, run_in_threadpool):
        """The batching loop (a background task): collect a batch, run it in a worker thread, answer each request."""
        while True:
            batch = await self._collect()
            loaded = batch[0][0]
            texts = [text for _, request_texts, _ in batch for text in request_texts]
            try:
                outputs = await run_in_threadpool(loaded.predict, texts)
            except Exception as error:  # every request of the batch learns what went wrong
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            start = 0
            for _, request_texts, future in batch:
                end = start + len(request_texts)
                if not future.done():  # a client may have gone away
                    future.set_result({name: values[start:end] for name, values in outputs.items()})
                start = end

    async def _collect(self):
        first = self.carried or await self.queue.get()
        self.carried = None
        batch, size = [first], len(first[1])
        deadline = asyncio.get_running_loop().time() + self.wait_seconds
        while size < self.max_texts:
            try:
                if self.queue.empty():
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        break
                    item = await asyncio.wait_for(self.queue.get(), remaining)
                else:
                    item = self.queue.get_nowait()
            except asyncio.TimeoutError:
                break
            if item[0] is not first[0] or size + len(item[1]) > self.max_texts:
                self.carried = item
                break
            batch.append(item)
            size += len(item[1])
        return batch


class VersionWatcher:
    """Holds the latest version under `base` and reloads when the set of versions changes."""
    def __init__(self, base, name):
        self.base, self.name = Path(base), name
        self.current = None
        self.failed = {}  # version -> load error; retried every poll, logged once

    def refresh(self):
        """Load the latest version if it is not the one served; returns True when it switched."""
        versions = existing_versions(self.base)
        latest = versions[-1] if versions else None
        if latest is None or (self.current and latest == self.current.version):
            return False
        try:
            loaded = LoadedVersion(self.base / str(latest))
        except Exception as error:  # a broken version must not take the served one down
            if latest not in self.failed:
                log.error("could not load %s version %s, still serving %s: %s", self.name, latest,
                          self.current.version if self.current else "nothing", error)
            self.failed[latest] = str(error)
            return False
        self.failed.pop(latest, None)
        previous, self.current = self.current, loaded
        log.info("serving %s version %s%s", self.name, latest,
                 f" (was {previous.version})" if previous else "")
        return True


def _version_for(watcher, name, version):
    if name != watcher.name:
        raise RequestError(404, f"Servable not found for request: Latest({name})")
    current = watcher.current
    if current is None:
        raise RequestError(404, f"Servable not found for request: Latest({name})")
    if version is not None:
        if not version.isdigit():
            raise RequestError(400, f"Malformed request: version must be an integer, got '{version}'")
        if int(version) != current.version:
            raise RequestError(404, f"Servable not found for request: Specific({name}, {version})")
    return current


def _status_body(loaded):
    return {"model_version_status": [
        {"version": str(loaded.version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]}


def _metadata_body(name, loaded):
    return {"model_spec": {"name": name, "signature_name": "", "version": str(loaded.version)},
            "metadata": {"signature_def": {"signature_def": loaded.signature_defs}}}


def _check_text(value, where):
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise RequestError(400, f"{where}: expected a string, got {kind}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError(400, f"{where}: unpaired surrogate escape, not Unicode text") from None
    return value


def parse_predict_request(body, max_batch, default_signature=SIGNATURE):
    """`(texts, row_format, signature, class_names)` from a predict body; raises `RequestError` for anything invalid.

    `max_batch`: most texts per request, or a dict of it per signature the request may name
    (`signature_name`); `default_signature` when it names none. `class_names`: None, or for a request
    that names the class to explain (`class_name`, an input of the explain signatures) one per text
    ("" where a row names none: the default class); the signature is then `explain_class`.
    """
    try:
        request = json.loads(body)
    except RecursionError:  # Python's parser recurses once per nesting level: `[` x 100,000 ends here
        raise RequestError(400, "JSON Parse error: nested too deeply") from None
    except ValueError as error:  # not UTF-8, not JSON, or an integer of more digits than Python converts
        raise RequestError(400, f"JSON Parse error: {error}") from None
    if not isinstance(request, dict):
        raise RequestError(400, "Malformed request: the body must be a JSON object")
    if "instances" in request and "inputs" in request:
        raise RequestError(400, "Not both 'inputs' and 'instances' can be set")
    if "instances" not in request and "inputs" not in request:
        raise RequestError(400, "Missing 'inputs' or 'instances' key")
    limits = max_batch if isinstance(max_batch, dict) else {SIGNATURE: max_batch}
    signature = request.get("signature_name") or default_signature
    if signature not in limits:
        raise RequestError(400, f"Serving signature name: \"{signature}\" not found in signature def")
    max_batch = limits[signature]

    explaining = signature in (EXPLAIN_SIGNATURE, EXPLAIN_CLASS_SIGNATURE)
    inputs = {INPUT_NAME, CLASS_INPUT_NAME} if explaining else {INPUT_NAME}
    expected = f"'{INPUT_NAME}'" + (f" and, to choose the class explained, '{CLASS_INPUT_NAME}'" if explaining else "")
    row_format = "instances" in request
    values = request["instances"] if row_format else request["inputs"]
    key = "instances" if row_format else "inputs"
    classes = None
    if not row_format and isinstance(values, dict):
        if INPUT_NAME not in values or not set(values) <= inputs:
            raise RequestError(400, f"'inputs' must hold the input {expected}, got {sorted(values)}")
        classes = values.get(CLASS_INPUT_NAME)
        values, key = values[INPUT_NAME], f"inputs.{INPUT_NAME}"
    if not isinstance(values, list):
        raise RequestError(400, f"'{key}' must be a list of strings")
    if len(values) > max_batch:
        flag = "--max-explain-batch" if explaining else "--max-batch"
        raise RequestError(400, f"'{key}' holds {len(values)} texts; the limit is {max_batch} per request ({flag})")
    if classes is not None and (not isinstance(classes, list) or len(classes) != len(values)):
        raise RequestError(400, f"'inputs.{CLASS_INPUT_NAME}' must be a list of strings, one per text")
    texts, row_classes = [], []
    for i, value in enumerate(values):
        if row_format and isinstance(value, dict):
            if INPUT_NAME not in value or not set(value) <= inputs:
                raise RequestError(400, f"instances[{i}]: expected {{{expected}}}, got keys {sorted(value)}")
            row_classes.append(value.get(CLASS_INPUT_NAME))
            value = value[INPUT_NAME]
        texts.append(_check_text(value, f"{key}[{i}]"))
    if classes is None and any(name is not None for name in row_classes):
        classes = [name or "" for name in row_classes] + [""] * (len(texts) - len(row_classes))
    if classes is not None:
        classes = [_check_text(name, f"{CLASS_INPUT_NAME}[{i}]") for i, name in enumerate(classes)]
    if signature == EXPLAIN_CLASS_SIGNATURE and classes is None:
        classes = [""] * len(texts)
    return texts, row_format, EXPLAIN_CLASS_SIGNATURE if classes is not None else signature, classes


def create_app(model_base, model_name=None, max_batch=1024, max_request_bytes=8 * 1024 * 1024, poll_seconds=10.0,
               batching=True, max_server_batch=256, batch_wait_ms=2.0, max_explain_batch=32):
    """The Starlette app serving `model_base`; loads the latest version before returning.

    Args:
        model_base: export base holding integer version folders (`saved_models/NAME`).
        model_name: name in the URLs (default: the base folder's name).
        max_batch: most texts per predict request (more: 400).
        max_request_bytes: largest request body (larger: 413).
        poll_seconds: seconds between looks for a new or removed version.
        batching: merge concurrent requests into one model call (`RequestBatcher`).
        max_server_batch: most texts per merged call.
        batch_wait_ms: how long a batch waits for more requests once it has one.
        max_explain_batch: most texts per explain request (more: 400).

    Example:
    >>> app = create_app("saved_models/imdb_bigru")  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8501)  # doctest: +SKIP
    """
    _require_serve_extra()
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    model_base = Path(model_base)
    if not model_base.is_dir():
        raise KerasSentimentError(f"{model_base}: no such model base directory")
    watcher = VersionWatcher(model_base, model_name or model_base.name)
    watcher.refresh()
    if watcher.current is None:
        problems = "; ".join(f"version {v}: {e}" for v, e in watcher.failed.items())
        raise KerasSentimentError(f"{model_base}: no loadable SavedModel version" + (f" ({problems})" if problems else
                                  " (expected folders named 1, 2, ... holding saved_model.pb)"))

    async def poll_versions():
        while True:
            await asyncio.sleep(poll_seconds)
            try:
                await run_in_threadpool(watcher.refresh)
            except Exception:  # keep polling whatever a scan hits (e.g. a base briefly unreadable)
                log.exception("version poll failed")

    batcher = RequestBatcher(max_server_batch, batch_wait_ms / 1000) if batching else None

    @asynccontextmanager
    async def lifespan(app):
        tasks = [asyncio.create_task(poll_versions())]
        if batcher is not None:
            tasks.append(asyncio.create_task(batcher.run(run_in_threadpool)))
        yield
        for task in tasks:
            task.cancel()

    async def run_model(loaded, texts):
        if batcher is not None:
            return await batcher.predict(loaded, texts)
        return await run_in_threadpool(loaded.predict, texts)

    async def read_body(request):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_request_bytes:
            raise RequestError(413, f"request body of {int(declared):,} bytes exceeds the limit of {max_request_bytes:,}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_request_bytes:
                raise RequestError(413, f"request body exceeds the limit of {max_request_bytes:,} bytes")
        return bytes(body)

    async def handle(request):
        path, method = request.url.path, request.method
        try:
            if method == "GET" and (match := GET_ROUTE.match(path)):
                loaded = _version_for(watcher, match["name"], match["version"])
                body = _metadata_body(watcher.name, loaded) if match["metadata"] else _status_body(loaded)
                return JSONResponse(body)
            if method == "GET" and path in ("/", "/index.html"):
                return HTMLResponse(demo_page(watcher.name))
            if method == "GET" and path.startswith("/demo/") and path[len("/demo/"):] in DEMO_FILES:
                name = path[len("/demo/"):]
                return Response((DEMO_DIR / name).read_bytes(), media_type=DEMO_FILES[name])
            if method == "POST" and (match := POST_ROUTE.match(path)):
                if match["verb"] not in ("predict", "explain"):
                    raise RequestError(400, f"Malformed request: '{match['verb']}' is not supported here; use :predict "
                                       "or :explain")
                loaded = _version_for(watcher, match["name"], match["version"])
                explaining = match["verb"] == "explain"
                if explaining and EXPLAIN_SIGNATURE not in loaded.signatures:
                    raise RequestError(400, f"version {loaded.version} has no explain signature: export its run "
                                       "directory again (keras-sentiment export RUN_DIR)")
                limits = {SIGNATURE: max_batch, EXPLAIN_SIGNATURE: max_explain_batch,
                          EXPLAIN_CLASS_SIGNATURE: max_explain_batch}
                limits = {name: limits[name] for name in limits
                          if name != SIGNATURE or not explaining}  # a missing signature is said below, not as unknown
                texts, row_format, signature, classes = parse_predict_request(
                    await read_body(request), limits, default_signature=EXPLAIN_SIGNATURE if explaining else SIGNATURE)
                check_signature_and_classes(loaded, signature, classes)
                if not texts:
                    outputs = {name: [] for name in loaded.output_names(signature)}
                elif signature == SIGNATURE:
                    outputs = await run_model(loaded, texts)
                else:
                    outputs = await run_in_threadpool(loaded.predict, texts, signature, classes)
                if row_format:
                    names = sorted(outputs)
                    rows = [dict(zip(names, values)) for values in zip(*(outputs[n] for n in names))]
                    return JSONResponse({"predictions": rows})
                return JSONResponse({"outputs": outputs})
            raise RequestError(404, f"Malformed request: {method} {path}")
        except RequestError as error:
            return JSONResponse({"error": str(error)}, status_code=error.status)
        except Exception as error:  # the server stays up; the client learns what went wrong
            log.exception("request failed")
            return JSONResponse({"error": f"internal error: {error}"}, status_code=500)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", handle, methods=methods)], lifespan=lifespan)
    app.state.watcher = watcher
    return app


def check_signature_and_classes(loaded, signature, classes):
    """A 400 for a signature the served version lacks, or a class to explain that is not one of its classes."""
    if signature not in loaded.signatures:
        fix = (f"version {loaded.version} was exported before a class could be chosen to explain: export its run "
               "directory again (keras-sentiment export RUN_DIR)" if signature == EXPLAIN_CLASS_SIGNATURE else
               f"version {loaded.version} has no such signature (it has {', '.join(sorted(loaded.signatures))})")
        raise RequestError(400, f"Serving signature name: \"{signature}\" not found in signature def: {fix}")
    unknown = sorted({name for name in classes or () if name and name not in loaded.class_names})
    if unknown:
        raise RequestError(400, f"{CLASS_INPUT_NAME} {', '.join(map(repr, unknown))}: not a class of this model; its "
                           f"classes are {', '.join(loaded.class_names)}")


def demo_page(model_name):
    """The demo page with the served model's name filled in (HTML-escaped)."""
    return (DEMO_DIR / "index.html").read_text(encoding="utf-8").replace("__MODEL_NAME__", html.escape(model_name, quote=True))


def _require_serve_extra():
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise KerasSentimentError("serve needs the serve extra: pip install 'keras-sentiment[serve]'") from None


def serve(model_base, model_name=None, host="127.0.0.1", port=8501, max_batch=1024,
          max_request_bytes=8 * 1024 * 1024, poll_seconds=10.0, **options):
    """Run the endpoint until interrupted (see `create_app`; `options`: its other arguments)."""
    _require_serve_extra()
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    app = create_app(model_base, model_name, max_batch, max_request_bytes, poll_seconds, **options)
    name = app.state.watcher.name
    print(f"Serving {name} version {app.state.watcher.current.version} from {model_base} at "
          f"http://{host}:{port}/v1/models/{name}; demo page at http://{host}:{port}/", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
