"""``self-check NUMBER``: the private self-check's client, played against a running web app.

The number is normalised here, and only ``{bucket, blinded, pow}`` is sent (DESIGN §10): the
server's evaluation is verified against the public key it publishes before anything is looked
up, so a server using another key, or a wrong proof, gives ``verified: false`` (exit 1). When the
server requires a proof of work and none is given, the client solves the server's ALTCHA
challenge (``/altcha/challenge``) as the page does.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import httpx
import typer

from breach_notify.cli.common import JsonOption, emit
from breach_notify.errors import BadInput, OperationalError
from breach_notify.numbers import parse_number


@dataclass
class CheckResult:
    """What the client learned: ``verified`` is False when the answer could not be trusted."""

    verified: bool
    found: bool
    bucket_bits: int
    breaches: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "found": self.found,
            "bucket_bits": self.bucket_bits,
            "breaches": self.breaches,
        }


def check(
    e164: str, base_url: str, *, pow_: str = "", client: httpx.Client | None = None
) -> CheckResult:
    """Run the self-check for an E.164 number against ``base_url``."""
    from breach_notify.crypto.oprf import TAG_BYTES, OprfClient, OprfError, bucket

    base = base_url.rstrip("/")
    http = client or httpx.Client(timeout=30.0)
    try:
        try:
            config = _json(http.get(f"{base}/check/config"))
            bits = int(config["bucket_bits"])
            keys = {k["id"]: _unb64(k["public_key"]) for k in config["keys"]}
            meta = {b["id"]: b for b in config["breaches"]}
        except (KeyError, TypeError, ValueError):
            raise OperationalError(
                f"{base}/check/config is not a self-check configuration; check --url"
            ) from None
        failed = CheckResult(verified=False, found=False, bucket_bits=bits)
        if not keys:  # nothing can be checked: nothing to send
            return CheckResult(verified=True, found=False, bucket_bits=bits)
        some_key = next(iter(keys.values()))
        try:
            blinder = OprfClient(some_key)
        except OprfError:
            return failed
        blinded = blinder.blind(e164)
        if not pow_ and (config.get("pow") or {}).get("required"):
            pow_ = _solve(http, base)
        body = {"bucket": bucket(e164, bits), "blinded": _b64(blinded.element), "pow": pow_}
        answer = _json(http.post(f"{base}/check/api", json=body))
    finally:
        if client is None:
            http.close()
    try:
        tags: dict[str, bytes] = {}
        for ev in answer["evaluations"]:
            verifier = OprfClient(keys[ev["key_id"]])
            tags[ev["key_id"]] = verifier.tag(blinded, _unb64(ev["evaluated"]), _unb64(ev["proof"]))
        found = []
        for b in answer["breaches"]:
            m = meta[b["id"]]
            if m["key_id"] != b["key_id"]:
                return failed
            blob = _unb64(b["tags"])
            if len(blob) % TAG_BYTES:
                return failed
            listed = {blob[i : i + TAG_BYTES] for i in range(0, len(blob), TAG_BYTES)}
            if tags[b["key_id"]] in listed:
                found.append({"id": m["id"], "title": m["title"], "kinds": list(m["kinds"])})
    except (KeyError, TypeError, ValueError, OprfError):  # VerifyError is an OprfError
        return failed
    return CheckResult(verified=True, found=bool(found), bucket_bits=bits, breaches=found)


def _solve(http: httpx.Client, base: str) -> str:
    """A solution of the server's proof-of-work challenge (a few seconds of CPU)."""
    from breach_notify.web.abuse import solve

    challenge = _json(http.get(f"{base}/altcha/challenge"))
    try:
        return solve(challenge)
    except (KeyError, TypeError, ValueError, RuntimeError):
        raise OperationalError(
            f"{base}/altcha/challenge gave a proof-of-work challenge this client cannot solve"
        ) from None


def _json(response: httpx.Response) -> Any:
    if response.status_code != 200:
        raise OperationalError(
            f"the self-check server answered HTTP {response.status_code} "
            f"for {response.request.url.path}; check --url and that the server is up"
        )
    try:
        return response.json()
    except ValueError:
        raise OperationalError("the self-check server did not answer JSON") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


def self_check(
    number: str = typer.Argument(..., help="The number to check, ideally in +E.164 form."),
    region: str = typer.Option(None, "--region", help="Region of a national number, e.g. GB."),
    url: str = typer.Option(..., "--url", help="Base URL of the web app, e.g. https://x.org."),
    pow_: str = typer.Option(
        "", "--pow", help="Proof-of-work solution [default: solve the server's challenge]."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Check privately whether a number is in a breach (the number never leaves this process)."""
    if not url.startswith(("http://", "https://")):
        raise BadInput("--url must be an http(s) URL such as https://check.example.org")
    e164 = parse_number(number, region.upper() if region else None).value
    try:
        result = check(e164, url, pow_=pow_)
    except httpx.HTTPError as exc:
        raise OperationalError(
            f"cannot reach the self-check server ({type(exc).__name__}); check --url"
        ) from None
    d = result.as_dict()
    if not result.verified:
        human = "the server's answer could not be verified against its published key"
    elif result.found:
        human = "found in: " + "; ".join(
            f"{b['title']} ({', '.join(b['kinds']) or 'number only'})" for b in result.breaches
        )
    else:
        human = "not found in any breach this server can check"
    emit(as_json, d, human)
    if not result.verified:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("self-check")(self_check)
