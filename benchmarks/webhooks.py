"""Benchmark: the web's webhooks against a floor, on loopback.

    .venv/bin/python benchmarks/webhooks.py [--notices 1800] [--inbound 200]
        [--concurrency 16 64] [--rounds 3]

Builds a throwaway data dir (keyring, subscribers, notices already sent), starts the real
``breach-notify web`` process, and fires signed Twilio requests at it: status callbacks (sent,
then delivered, for every notice) mixed with inbound messages (about 5 %, as in issue 12's
measurement; 60 % STOP, 15 % START, 15 % YES, 10 % HELP), over keep-alive connections,
``--concurrency`` at a time. The floor, measured in the same run, is a bare
Starlette endpoint on the same uvicorn settings that checks the same signature and answers 204.
Prints requests/s, p50 and p99 for both, the ratio, and each server's CPU time per request
during the burst (all its threads: the journal's writer, and the applier as far as it ran
meanwhile — steadier than wall time on a shared machine); then waits for the applier and checks
that every event reached the store. Rounds interleave floor and web; the best of each counts.
The client is a minimal asyncio HTTP/1.1 client (requests pre-signed and pre-encoded) so that
it takes as little of the machine as possible from both.

Goals (2-core machine): ≥ 500 requests/s, ≥ 0.5× the floor, p99 < 250 ms at 16.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

PUBLIC = "https://hooks.example.org"
TOKEN = "bench-token-0123456789abcdef0123"
GOAL_RPS, GOAL_RATIO, GOAL_P99 = 500.0, 0.5, 0.250


# -- the floor ------------------------------------------------------------------------------


def floor_app() -> object:
    """A bare Starlette endpoint: read the form, check the same signature, answer 204."""
    from urllib.parse import parse_qsl

    from starlette.applications import Starlette
    from starlette.datastructures import ImmutableMultiDict
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(TOKEN)

    async def hook(request: Request) -> Response:
        body = await request.body()
        params = ImmutableMultiDict(parse_qsl(body.decode(), keep_blank_values=True))
        url = PUBLIC + request.url.path
        if not validator.validate(url, params, request.headers.get("X-Twilio-Signature", "")):
            return Response(status_code=403)
        return Response(status_code=204)

    async def healthz(request: Request) -> Response:
        return Response("ok")

    return Starlette(
        routes=[
            Route("/twilio/inbound", hook, methods=["POST"]),
            Route("/twilio/status", hook, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )


def serve_floor(port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        floor_app(),  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        workers=1,
        loop="asyncio",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_keep_alive=5,
        limit_concurrency=1024,
        backlog=2048,
    )
    uvicorn.Server(config).run()


# -- data -----------------------------------------------------------------------------------


def numbers(n: int) -> list[str]:
    import phonenumbers

    rng = random.Random(3)
    out: set[str] = set()
    while len(out) < n:
        cand = "+336" + "".join(str(rng.randrange(10)) for _ in range(8))
        if phonenumbers.is_valid_number(phonenumbers.parse(cand, None)):
            out.add(cand)
    return sorted(out)


def build(home: Path, notices: int, inbound: int) -> tuple[list[str], list[str]]:
    """Subscribers and sent notices; returns (subscriber numbers, notice gateway ids)."""
    from breach_notify.crypto import Keyring
    from breach_notify.numbers import E164
    from breach_notify.settings import Settings
    from breach_notify.store import db
    from breach_notify.subscribers import registry

    settings = Settings(home=home)
    ring = Keyring.create(settings.keyring_path)
    nums = numbers(max(inbound, 1))
    gids = [f"SM{i:032x}" for i in range(notices)]
    with db.session(settings) as conn, db.transaction(conn):
        ids = registry.create_many(
            conn,
            ring,
            [(E164(n), "en") for n in nums],
            status="active",
            now=datetime.now(UTC),
            consent_source="benchmark",
        )
        conn.execute(
            "INSERT INTO notices (id, subscriber_id, breach_id, state, gateway_id, sent_at)"
            " SELECT 'n' || i, $subs[1 + i % len($subs)], 'b' || i, 'sent', $gids[1 + i], now()"
            " FROM range($n) t(i)",
            {"subs": ids, "gids": gids, "n": notices},
        )
    return nums, gids


def requests(nums: list[str], gids: list[str]) -> list[tuple[str, dict[str, str]]]:
    """Status callbacks (sent, delivered, with To) for each notice, and inbound keywords."""
    out: list[tuple[str, dict[str, str]]] = []
    for i, gid in enumerate(gids):
        to = nums[i % len(nums)]
        for status in ("sent", "delivered"):
            params = {"MessageSid": gid, "MessageStatus": status, "To": to, "AccountSid": "AC1"}
            out.append(("/twilio/status", params))
    words = ["STOP"] * 12 + ["START"] * 3 + ["YES"] * 3 + ["HELP"] * 2
    for i, number in enumerate(nums):
        params = {
            "From": number,
            "To": "+15005550006",
            "Body": words[i % len(words)],
            "MessageSid": f"SMin{i:030x}",
            "AccountSid": "AC1",
        }
        out.append(("/twilio/inbound", params))
    random.Random(1).shuffle(out)
    return out


def encode(port: int, path: str, params: dict[str, str]) -> bytes:
    from twilio.request_validator import RequestValidator

    body = urlencode(params).encode()
    sig = RequestValidator(TOKEN).compute_signature(PUBLIC + path, params)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Twilio-Signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# -- the client -----------------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


async def fire(port: int, payloads: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    """Send every payload over ``concurrency`` keep-alive connections; (seconds, latencies)."""
    queue = list(reversed(payloads))
    latencies: list[float] = []
    codes: dict[int, int] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while queue:
                payload = queue.pop()
                t0 = time.perf_counter()
                writer.write(payload)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - t0)
                codes[status] = codes.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took = time.perf_counter() - started
    bad = {c: n for c, n in codes.items() if not 200 <= c < 300}
    if bad:
        raise SystemExit(f"non-2xx answers: {bad}")
    return took, latencies


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] if len(values) > 1 else values[0]


# -- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                if s.recv(12).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not start")


def start(args: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_up(port, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.wait(60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    port: int, reqs: list[tuple[str, dict[str, str]]], concurrency: int, pid: int
) -> dict[str, float]:
    payloads = [encode(port, path, params) for path, params in reqs]
    cpu = cpu_seconds(pid)
    took, lat = asyncio.run(fire(port, payloads, concurrency))
    cpu = cpu_seconds(pid) - cpu
    return {
        "rps": len(payloads) / took,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "cpu_ms": 1e3 * cpu / len(payloads),  # the server's CPU per request, all threads
        "applied_after": 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--notices", type=int, default=1800, help="status callbacks: 2 per notice")
    ap.add_argument("--inbound", type=int, default=200, help="inbound messages (and numbers)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved floor/web rounds")
    ap.add_argument("--floor-server", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--keep", action="store_true", help="keep the data dir")
    a = ap.parse_args()
    if a.floor_server:
        serve_floor(a.floor_server)
        return

    tmp = Path(tempfile.mkdtemp(prefix="bn-bench-web-"))
    env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN}
    env = {k: v for k, v in env.items() if not k.startswith("BREACH_NOTIFY_")}
    print(f"{os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}; data dir {tmp}")
    print("old code (HEAD b0672ab, issue 12): 37.5 req/s, p50 420 ms, p99 550 ms at 16")
    try:
        best: list[tuple[int, dict[str, float], dict[str, float]]] = []
        for c in a.concurrency:
            webs: list[dict[str, float]] = []
            floors: list[dict[str, float]] = []
            for r in range(a.rounds):
                floors.append(run_floor(tmp, env, c, a.notices, a.inbound))
                webs.append(run_web(tmp / f"home-{c}-{r}", env, c, a.notices, a.inbound))
                print(f"  c={c} round {r + 1}: {line(webs[-1], floors[-1])}", flush=True)
            ours = max(webs, key=lambda m: m["rps"])
            base = max(floors, key=lambda m: m["rps"])
            best.append((c, ours, base))
            print(f"concurrency {c:>3}, best of {a.rounds}: {line(ours, base)}", flush=True)
        print(f"goals: >= {GOAL_RPS:.0f} req/s, >= {GOAL_RATIO}x floor, p99 < 250 ms at 16")
        for c, ours, base in best:
            verdicts = [
                f"{ours['rps']:.0f} req/s {'ok' if ours['rps'] >= GOAL_RPS else 'LOW'}",
                f"{ours['rps'] / base['rps']:.2f}x floor"
                f" {'ok' if ours['rps'] >= GOAL_RATIO * base['rps'] else 'LOW'}",
            ]
            if c == 16:
                p99 = ours["p99"] * 1e3
                verdicts.append(f"p99 {p99:.0f} ms {'ok' if p99 < GOAL_P99 * 1e3 else 'HIGH'}")
            print(f"  concurrency {c}: " + ", ".join(verdicts))
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def line(ours: dict[str, float], base: dict[str, float]) -> str:
    return (
        f"web {ours['rps']:6.0f} req/s p50 {ours['p50'] * 1e3:6.1f} ms"
        f" p99 {ours['p99'] * 1e3:6.1f} ms | floor {base['rps']:6.0f} req/s"
        f" p50 {base['p50'] * 1e3:6.1f} ms p99 {base['p99'] * 1e3:6.1f} ms"
        f" | {ours['rps'] / base['rps']:.2f}x | server CPU/request {ours['cpu_ms']:.2f} vs"
        f" {base['cpu_ms']:.2f} ms | applied {ours['applied_after']:.1f} s later"
    )


def run_floor(
    tmp: Path, env: dict[str, str], c: int, notices: int, inbound: int
) -> dict[str, float]:
    nums, gids = numbers(max(inbound, 1)), [f"SM{i:032x}" for i in range(notices)]
    port = free_port()
    floor = start([sys.executable, __file__, "--floor-server", str(port)], port, env, tmp / "f.log")
    try:
        return measure(port, requests(nums, gids), c, floor.pid)
    finally:
        stop(floor)


def run_web(
    home: Path, env: dict[str, str], c: int, notices: int, inbound: int
) -> dict[str, float]:
    home.mkdir(mode=0o700)
    nums, gids = build(home, notices, inbound)
    reqs = requests(nums, gids)
    port = free_port()
    cmd = [sys.executable, "-m", "breach_notify", "--home", str(home), "web"]
    web = start([*cmd, "--port", str(port), "--public-url", PUBLIC], port, env, home / "web.log")
    try:
        result = measure(port, reqs, c, web.pid)
        result["applied_after"] = settle(home)
    finally:
        stop(web)
    check(home, inbound, len(gids))
    return result


def settle(home: Path) -> float:
    """Seconds until the applier has applied everything the run journaled."""
    from breach_notify.events import journal
    from breach_notify.settings import Settings

    path = Settings(home=home).journal_path
    started = time.monotonic()
    while journal.backlog(path).pending:
        time.sleep(0.05)
    return time.monotonic() - started


def check(home: Path, inbound: int, notices: int) -> None:
    """Every callback and every consent-changing message reached the store."""
    from breach_notify.settings import Settings
    from breach_notify.store import db

    with db.session(Settings(home=home)) as conn:
        n_delivered = conn.execute(
            "SELECT count(*) FROM notices WHERE state = 'delivered'"
        ).fetchone()
        applied = conn.execute("SELECT count(*) FROM applied_events").fetchone()
    helps = sum(1 for i in range(inbound) if i % 20 >= 18)  # answered, not journaled
    journaled = 2 * notices + inbound - helps
    if n_delivered != (notices,) or applied != (journaled,):
        raise SystemExit(f"lost events: delivered {n_delivered}, applied {applied} of {journaled}")


if __name__ == "__main__":
    main()
