"""`keras-sentiment serve` under load: N concurrent clients for T seconds, on loopback.

Starts the real server (`python -m keras_sentiment.apps.cli serve`) once per mode (with and without
request batching, or as `--modes` says), waits until it answers, then runs N client threads, each
with a keep-alive HTTP connection, sending `:predict` requests of `--texts-per-request` real IMDB
test reviews (or generated ones without `--data-dir`) back to back for T seconds. Both are bounded
(N <= 256, T <= 600) and the script stops by itself. Reports requests/s, texts/s, p50/p95/p99
latency and errors per mode, as a Markdown table for docs/RESULTS.md (and `--json` for machines).

    python benchmarks/serve_load.py --model-base saved_models/imdb_bilstm --data-dir ../shared/data \
        --clients 32 --seconds 60
"""

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402

MODES = {"batching": ["--batching"], "no-batching": ["--no-batching"]}


def bounded(low, high):
    def parse(text):
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {value}")
        return value
    return parse


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def review_texts(data_dir, count=2_000):
    """Real IMDB test reviews (a seeded sample) when a data dir is given, else generated ones."""
    rng = random.Random(0)
    if data_dir:
        from common import imdb_split

        texts, _ = imdb_split(data_dir, "test")
        return rng.sample(texts, min(count, len(texts)))
    words = "the film was good bad great awful plot acting and it a boring superb story".split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(20, 300))) for _ in range(count)]


class Server:
    """The real `serve` command in a child process, on a free loopback port."""

    def __init__(self, model_base, name, flags):
        self.port = free_port()
        self.log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"serve_load_{self.port}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keras_sentiment.apps.cli", "serve", "--model-base", str(model_base), "--model-name", name,
             "--port", str(self.port), *flags],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        self.path = f"/v1/models/{name}:predict"
        self._wait_until_ready(name)

    def _wait_until_ready(self, name, limit=180):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"serve exited with {self.process.returncode}; see {self.log.name}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", f"/v1/models/{name}")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)  # polling a starting server
        self.stop()
        sys.exit(f"serve did not answer within {limit} s; see {self.log.name}")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def client(port, path, texts, per_request, stop_at, seed, results):
    """One client: requests back to back until `stop_at`; appends (latency seconds or None for an error, status)."""
    rng = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while time.monotonic() < stop_at:
        body = json.dumps({"instances": rng.sample(texts, per_request)})
        start = time.perf_counter()
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            ok = response.status == 200 and len(json.loads(answer)["predictions"]) == per_request
            results.append((time.perf_counter() - start if ok else None, response.status))
        except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
            results.append((None, type(error).__name__))
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.close()


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def load(server, texts, clients, seconds, per_request):
    """Run `clients` threads for `seconds`; returns the mode's measurements."""
    results, stop_at = [], time.monotonic() + seconds
    threads = [threading.Thread(target=client, args=(server.port, server.path, texts, per_request, stop_at, i, results))
               for i in range(clients)]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    latencies = [latency for latency, _ in results if latency is not None]
    errors = [status for latency, status in results if latency is None]
    return {
        "requests": len(results), "errors": len(errors), "error_kinds": sorted({str(e) for e in errors}),
        "seconds": round(elapsed, 1), "requests_per_second": len(latencies) / elapsed,
        "texts_per_second": len(latencies) * per_request / elapsed,
        **{f"p{q}_ms": 1000 * percentile(latencies, q) if latencies else None for q in (50, 95, 99)},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model-base", required=True, help="export base to serve (integer version folders)")
    parser.add_argument("--data-dir", default=None, help="data dir with IMDB for real reviews (default: generated texts)")
    parser.add_argument("--clients", type=bounded(1, 256), default=32, help="concurrent clients")
    parser.add_argument("--seconds", type=bounded(1, 600), default=60, help="load duration per mode")
    parser.add_argument("--texts-per-request", type=bounded(1, 1024), default=1, help="reviews per request")
    parser.add_argument("--modes", nargs="+", choices=tuple(MODES), default=list(MODES), help="server modes to measure")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    texts = review_texts(args.data_dir)
    rows = {}
    for mode in args.modes:
        server = Server(args.model_base, "load", MODES[mode])
        try:
            load(server, texts, min(args.clients, 4), 3, args.texts_per_request)  # warm-up: traces, thread pools
            rows[mode] = load(server, texts, args.clients, args.seconds, args.texts_per_request)
        finally:
            server.stop()
        print(f"{mode}: {json.dumps(rows[mode])}", flush=True)

    print(f"\n`{' '.join(['python', 'benchmarks/serve_load.py', *(argv if argv is not None else sys.argv[1:])])}`; "
          f"{machine()}; {args.clients} clients x {args.seconds} s, {args.texts_per_request} review(s) per request\n")
    print("| server | requests/s | reviews/s | p50 ms | p95 ms | p99 ms | requests | errors |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode, row in rows.items():
        print(f"| {mode} | {row['requests_per_second']:.1f} | {row['texts_per_second']:.1f} | {row['p50_ms']:.0f} | "
              f"{row['p95_ms']:.0f} | {row['p99_ms']:.0f} | {row['requests']:,} | {row['errors']} |")
    if len(rows) == 2:
        ratio = rows["batching"]["requests_per_second"] / max(rows["no-batching"]["requests_per_second"], 1e-9)
        print(f"\nbatching / no-batching throughput: {ratio:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "args": vars(args), "modes": rows}, indent=2))
    return 1 if any(row["errors"] for row in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
