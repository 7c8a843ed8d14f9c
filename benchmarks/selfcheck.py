"""The private self-check's costs, against baselines measured in the same run on this machine.

- tagging: OPRF tags (RFC 9497 VOPRF Evaluate over ristretto255, libsodium through rbcl) per
  CPU-second of one thread (what a dedicated core does, whatever the neighbours), per wall
  second on one thread and on every core (threads: each libsodium call releases the GIL),
  against the batch HMAC of the ingest (``Pseudonymizer.pseudonyms_arrow``, one thread); then the
  projected time for 533 million numbers on 2 and on 32 dedicated cores, from the CPU rate;
- ingest: the same dump ingested with and without ``--self-check`` (end-to-end rows/s);
- lookups: ``POST /check/api`` answered per second by the real web app (a ``breach-notify
  webhooks`` subprocess, uvicorn) against its bare ``GET /healthz``, with the same client load.

    python benchmarks/selfcheck.py [--tags 4000] [--hmac 1000000] [--rows 20000]
                                   [--seconds 5] [--clients 8] [--json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.synthetic import write_facebook_fast  # noqa: E402

from breach_notify.crypto import Keyring  # noqa: E402
from breach_notify.crypto.oprf import OprfClient, OprfServer  # noqa: E402
from breach_notify.ingest import IngestOptions, ingest, selfcheck  # noqa: E402
from breach_notify.settings import Settings  # noqa: E402

FACEBOOK_NUMBERS = 533_000_000


def numbers(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [f"+336{rng.randrange(10**8):08d}" for _ in range(n)]


def best(fn, repeat: int, clock=time.perf_counter) -> float:  # type: ignore[no-untyped-def]
    """The shortest of ``repeat`` runs, by ``clock`` (wall time, or this thread's CPU time:
    on a shared machine the CPU time is what a dedicated core would take)."""
    out = float("inf")
    for _ in range(repeat):
        t = clock()
        fn()
        out = min(out, clock() - t)
    return out


def tag_rates(n: int, repeat: int) -> tuple[float, float, float, int]:
    """(tags per CPU-second of one thread, tags/s wall on one thread, tags/s wall on all
    cores, cores)."""
    server = OprfServer("o1", os.urandom(32))
    values = [v.encode() for v in numbers(n)]
    cpu = n / best(lambda: server.tags(values), repeat, time.thread_time)
    one = n / best(lambda: server.tags(values), repeat)
    cores = os.cpu_count() or 1

    def threaded() -> None:
        parts = [values[i::cores] for i in range(cores)]
        threads = [threading.Thread(target=server.tags, args=(p,)) for p in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return cpu, one, n / best(threaded, repeat), cores


def hmac_rates(n: int, repeat: int) -> tuple[float, float]:
    """(HMACs per CPU-second, HMACs/s wall), one thread, the ingest's batch C path."""
    from breach_notify.crypto import Pseudonymizer

    p = Pseudonymizer("p1", os.urandom(32))
    arr = pa.array(numbers(n, seed=2), pa.string())
    cpu = n / best(lambda: p.pseudonyms_arrow(arr), repeat, time.thread_time)
    return cpu, n / best(lambda: p.pseudonyms_arrow(arr), repeat)


def ingest_rates(rows: int, work: Path) -> tuple[float, float]:
    """Rows/s of a whole ingest without and with the self-check (fresh stores)."""
    dump = work / "dump.txt"
    write_facebook_fast(dump, rows, seed=3)
    out = []
    for tagging in (False, True):
        settings = Settings(home=work / f"home-{tagging}")
        ring = Keyring.create(settings.keyring_path)
        t = time.perf_counter()
        ingest(settings, ring, [dump], IngestOptions("bench", self_check=tagging))
        out.append(rows / (time.perf_counter() - t))
    return out[0], out[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lookup_rates(rows: int, work: Path, seconds: float, clients: int) -> tuple[float, float, int]:
    """(self-check answers/s, bare /healthz answers/s, response bytes) from a served store."""
    home = work / "served"
    settings = Settings(home=home)
    ring = Keyring.create(settings.keyring_path)
    dump = work / "served.txt"
    write_facebook_fast(dump, rows, seed=4)
    ingest(settings, ring, [dump], IngestOptions("bench", title="Benchmark", self_check=True))
    port = _free_port()
    env = {
        **os.environ,
        "BREACH_NOTIFY_HOME": str(home),
        "BREACH_NOTIFY_SELF_CHECK_REQUIRE_POW": "false",
        # limits stay on (their cost is part of an answer) but wide enough for the load
        "BREACH_NOTIFY_SELF_CHECK_LIMIT_PER_CLIENT": "100000000/hour",
        "BREACH_NOTIFY_SELF_CHECK_LIMIT_PER_BUCKET": "100000000/hour",
        "BREACH_NOTIFY_SELF_CHECK_LIMIT_GLOBAL": "100000000/hour",
        "TWILIO_AUTH_TOKEN": "benchmark",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "breach_notify",
            "webhooks",
            "--port",
            str(port),
            "--public-url",
            "http://bench.invalid",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                config = httpx.get(f"{base}/check/config", timeout=5).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        client = OprfClient(base64.b64decode(config["keys"][0]["public_key"]))
        blinded = base64.b64encode(client.blind("+33612345678").element).decode()
        body = {"bucket": 0, "blinded": blinded, "pow": ""}
        size = len(httpx.post(f"{base}/check/api", json=body).content)

        def load(request) -> float:  # type: ignore[no-untyped-def]
            done = [0] * clients
            stop = time.monotonic() + seconds

            def worker(i: int) -> None:
                with httpx.Client(base_url=base, timeout=30) as http:
                    while time.monotonic() < stop:
                        assert request(http).status_code == 200
                        done[i] += 1

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
            t = time.perf_counter()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            return sum(done) / (time.perf_counter() - t)

        bare = load(lambda http: http.get("/healthz"))
        checks = load(lambda http: http.post("/check/api", json=body))
        return checks, bare, size
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=4000, help="numbers tagged per round")
    ap.add_argument("--hmac", type=int, default=1_000_000, help="numbers HMAC-ed per round")
    ap.add_argument("--rows", type=int, default=20_000, help="rows of the ingested dumps")
    ap.add_argument("--seconds", type=float, default=5.0, help="load time per endpoint")
    ap.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each rate is the best")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-selfcheck-"))
    try:
        cpu, one, threaded, cores = tag_rates(args.tags, args.repeat)
        hmac_cpu, hmac = hmac_rates(args.hmac, args.repeat)
        plain, tagged = ingest_rates(args.rows, work)
        checks, bare, size = lookup_rates(args.rows, work, args.seconds, args.clients)
        hours = {c: FACEBOOK_NUMBERS / (cpu * c) / 3600 for c in (2, 32)}
        result = {
            "tag_per_cpu_s": round(cpu),
            "tag_per_s_1_thread": round(one),
            "tag_per_s_all_cores": round(threaded),
            "cores": cores,
            "thread_scaling": round(threaded / one, 2),
            "hmac_c_per_cpu_s": round(hmac_cpu),
            "hmac_c_per_s_1_thread": round(hmac),
            "hmac_vs_tag_per_cpu_s": round(hmac_cpu / cpu, 1),
            "projected_hours_533M_2_cores": round(hours[2], 2),
            "projected_hours_533M_32_cores": round(hours[32], 2),
            "ingest_rows_per_s": round(plain),
            "ingest_self_check_rows_per_s": round(tagged),
            "ingest_rows": args.rows,
            "lookups_per_s": round(checks, 1),
            "bare_endpoint_per_s": round(bare, 1),
            "lookup_vs_bare": round(checks / bare, 3),
            "lookup_response_bytes": size,
            "target_bucket": selfcheck.TARGET_BUCKET,
            "clients": args.clients,
            "load_average_1min": round(os.getloadavg()[0], 2),
        }
        if args.json:
            print(json.dumps(result))
        else:
            for k, v in result.items():
                print(f"{k:>32}: {v}")
            print(
                f"\ntagging: {cpu:,.0f} numbers per CPU-second ({hmac_cpu / cpu:,.0f}x slower than "
                f"the batch HMAC's {hmac_cpu:,.0f}); 533M numbers: {hours[2]:.1f} h on 2 cores, "
                f"{hours[32]:.1f} h on 32; lookups: {checks:,.1f}/s vs bare {bare:,.1f}/s"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
