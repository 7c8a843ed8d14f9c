"""Benchmark: sign-up POSTs per second, against a bare Starlette endpoint in the same run, and
the cost of verifying a proof of work.

    .venv/bin/python benchmarks/web.py [--requests 200] [--clients 4] [--cost 5000]

One server process (uvicorn, one worker) serves the sign-up pages of a throwaway data dir with
the dry-run gateway, plus ``POST /bare``: a Starlette endpoint that reads the same form body and
answers a small page, nothing else. The client pre-solves one ALTCHA challenge per sign-up (on
every core), then posts from ``--clients`` threads: new numbers, a valid CSRF token, consent. It
reports answered sign-ups/s, the same including the work done after each answer (store + SMS
to the dry-run outbox), bare POSTs/s, and the verify cost (one PBKDF2 of ``--cost`` iterations).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from breach_notify.crypto import Keyring
from breach_notify.settings import Settings
from breach_notify.web import abuse

ROOMY = {
    "BREACH_NOTIFY_LIMIT_PER_CLIENT": "1000000/hour",
    "BREACH_NOTIFY_LIMIT_PER_PREFIX": "1000000/hour",
    "BREACH_NOTIFY_LIMIT_PER_NUMBER": "1000000/hour",
    "BREACH_NOTIFY_SIGNUP_SMS_DAILY_BUDGET": "1000000",
    "BREACH_NOTIFY_GATEWAY": "dryrun://",
}


def serve(port: int) -> None:
    """The server side (run as ``web.py --serve PORT`` with ``BREACH_NOTIFY_*`` set)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, PlainTextResponse
    from starlette.routing import Route

    from breach_notify.web import pages

    logging.basicConfig(level=logging.WARNING)
    settings = Settings()
    front = pages.Front(settings)

    async def bare(request: Request) -> HTMLResponse:
        body = await request.body()
        return HTMLResponse(
            f"<!doctype html><p>ok {len(body)}</p>", headers={"Connection": "close"}
        )

    async def busy(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(front.busy))

    app = Starlette(
        routes=[
            Route("/bare", bare, methods=["POST"]),
            Route("/_bench/busy", busy),
            *pages.routes(settings, front=front),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


def _solve(challenge: dict[str, Any]) -> str:
    return abuse.solve(challenge)


def _numbers(n: int) -> list[str]:
    return [f"+447400{100000 + i}" for i in range(n)]


def run(requests: int, clients: int, cost: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="bn-web-bench-"))
    try:
        settings = Settings(home=home)
        settings.ensure_home()
        Keyring.create(settings.keyring_path)
        port = _free_port()
        env = {
            **os.environ,
            **ROOMY,
            "BREACH_NOTIFY_HOME": str(home),
            "BREACH_NOTIFY_POW_COST": str(cost),
        }
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port)], env=env, stderr=subprocess.PIPE
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait(base, proc)
            return _measure(base, requests, clients, cost, settings)
        finally:
            proc.terminate()
            proc.wait(15)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _measure(
    base: str, requests: int, clients: int, cost: int, settings: Settings
) -> dict[str, float]:
    with httpx.Client(base_url=base, timeout=60) as c:
        page = c.get("/signup")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        cookies = dict(c.cookies)
        challenges = [c.get("/altcha/challenge").json() for _ in range(requests)]
    began = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count() or 2) as pool:
        payloads = list(pool.map(_solve, challenges))
    solve_s = (time.perf_counter() - began) / requests * (os.cpu_count() or 2)
    forms = [
        {"csrf": token, "country": "GB", "number": n, "consent": "yes", "altcha": p}
        for n, p in zip(_numbers(requests), payloads, strict=True)
    ]

    local = threading.local()

    def post(path: str, form: dict[str, str]) -> int:
        if not hasattr(local, "client"):  # one client per thread (making one costs ~10 ms)
            local.client = httpx.Client(base_url=base, timeout=60, cookies=cookies)
        return int(local.client.post(path, data=form).status_code)

    def timed(path: str) -> tuple[float, float, list[int]]:
        """(seconds until every answer, seconds until every background task too, statuses)"""
        with ThreadPoolExecutor(clients) as threads:
            start = time.perf_counter()
            codes = list(threads.map(lambda f: post(path, f), forms))
            answered = time.perf_counter() - start
        with httpx.Client(base_url=base) as c:
            while c.get("/_bench/busy").text != "0":
                time.sleep(0.005)
        return answered, time.perf_counter() - start, codes

    bare_s, _, bare_codes = timed("/bare")
    signup_s, done_s, signup_codes = timed("/signup")
    assert set(bare_codes) == {200} and set(signup_codes) == {200}, (bare_codes, signup_codes)
    sent = (settings.outbox_dir / "dryrun.jsonl").read_text().count("\n")
    return {
        "requests": requests,
        "clients": clients,
        "pow_cost": cost,
        "bare_posts_per_s": requests / bare_s,
        "signup_posts_per_s": requests / signup_s,
        "signup_completed_per_s": requests / done_s,
        "codes_sent": sent,
        "pow_verify_us": _verify_cost(cost),
        "pow_solve_python_s": solve_s,
    }


def _verify_cost(cost: int, rounds: int = 200) -> float:
    """Microseconds per verification of a solved payload (the library call, fresh each time)."""
    import altcha

    secret = os.urandom(32)
    pow_ = abuse.ProofOfWork(cost, secret)
    payload = abuse.solve(pow_.challenge())
    began = time.perf_counter()
    for _ in range(rounds):
        assert altcha.verify_solution(payload, secret).verified
    return (time.perf_counter() - began) / rounds * 1e6


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            httpx.get(base + "/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--cost", type=int, default=Settings().pow_cost)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    r = run(args.requests, args.clients, args.cost)
    print(f"sign-up POSTs, {r['requests']} requests from {r['clients']} clients (PoW pre-solved)")
    print(f"  bare Starlette endpoint      {r['bare_posts_per_s']:8.1f} POST/s")
    print(
        f"  sign-up answered             {r['signup_posts_per_s']:8.1f} POST/s"
        f"  ({r['signup_posts_per_s'] / r['bare_posts_per_s']:.2f} x bare)"
    )
    print(
        f"  sign-up incl. store + SMS    {r['signup_completed_per_s']:8.1f} /s"
        f"  ({int(r['codes_sent'])} codes in the dry-run outbox)"
    )
    print(f"PoW verify (PBKDF2-SHA256, cost {r['pow_cost']}): {r['pow_verify_us']:.0f} us")
    print(f"PoW solve in Python, one core: {r['pow_solve_python_s']:.2f} s per challenge")


if __name__ == "__main__":
    main()
