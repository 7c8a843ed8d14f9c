"""``run``, ``serve``, ``demo`` and ``ui``: the stages through Prefect, and Prefect's UI.

Prefect is imported only after :func:`flows.prefect_env.apply` (root ``flows/``) has set its
environment (home inside the data dir, no caching, no persisted results, redaction, no telemetry).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import typer

from breach_notify.cli import orchestration
from breach_notify.cli.common import JsonOption, emit, err, out, settings
from breach_notify.crypto import Keyring
from breach_notify.errors import BadInput, OperationalError
from breach_notify.ingest.inbox import read_inbox
from breach_notify.settings import Settings
from breach_notify.sms.gateway import check_url


def run(
    ctx: typer.Context,
    inbox: Path = typer.Option(None, "--inbox", help="Inbox dir: one folder per breach."),
    gateway: str = typer.Option(
        None, "--gateway", help="dryrun://, twilio://?from=… [default: BREACH_NOTIFY_GATEWAY]"
    ),
    rate: float = typer.Option(None, "--rate", help="Segments per second."),
    max_messages: int = typer.Option(None, "--max", help="Send at most N messages."),
    ignore_quiet_hours: bool = typer.Option(
        False, "--ignore-quiet-hours", help="Send outside recipients' daytime too."
    ),
    resend_in_doubt: bool = typer.Option(
        False, "--resend-in-doubt", help="Retry notices the gateway cannot confirm."
    ),
    task_runner: str = typer.Option("threads", "--task-runner", help="threads | dask"),
    dask_address: str = typer.Option(None, "--dask-address", help="tcp://host:8786 of a cluster."),
    as_json: bool = JsonOption,
) -> None:
    """The whole pipeline as one Prefect flow run (embedded Prefect unless PREFECT_API_URL)."""
    s = settings(ctx)
    result = run_pipeline(
        s,
        inbox=inbox if inbox is not None else s.inbox,
        gateway=gateway or s.gateway,
        rate=rate,
        max_messages=max_messages,
        ignore_quiet_hours=ignore_quiet_hours,
        resend_in_doubt=resend_in_doubt,
        task_runner=task_runner,
        dask_address=dask_address,
    )
    _emit_run(as_json, result)


def run_pipeline(
    s: Settings,
    *,
    inbox: Path | None,
    gateway: str,
    rate: float | None = None,
    max_messages: int | None = None,
    ignore_quiet_hours: bool = False,
    resend_in_doubt: bool = False,
    task_runner: str = "threads",
    dask_address: str | None = None,
) -> dict[str, Any]:
    """Check the inputs (fast, before Prefect starts), then run the ``pipeline`` flow."""
    if inbox is not None:
        # a bad folder or breach.toml fails here, before Prefect starts
        read_inbox(inbox, follow_symlinks=s.inbox_follow_symlinks)
    check_url(gateway)
    orchestration.load()
    from flows import dask_runner, prefect_env

    dask_runner.check(task_runner, dask_address)
    Keyring.load(s.keyring_path)  # a missing or exposed keyring fails here, with its fix
    prefect_env.apply(s)
    api = os.environ.get("PREFECT_API_URL")
    if api:
        from flows.serve import healthy

        if not healthy(api, timeout=5.0):
            raise OperationalError(
                f"the Prefect server at PREFECT_API_URL={api} does not answer; start it or unset "
                "PREFECT_API_URL to use the embedded mode"
            )
    from flows.pipeline import home_path, pipeline

    home = home_path(s.home)
    began = time.monotonic()
    state = pipeline(
        inbox=str(inbox.resolve()) if inbox is not None else None,
        gateway=gateway,
        home=home,
        keyring=str(s.keyring_path.resolve()),
        rate=rate,
        max_messages=max_messages,
        ignore_quiet_hours=ignore_quiet_hours,
        resend_in_doubt=resend_in_doubt,
        task_runner=task_runner,
        dask_address=dask_address,
        return_state=True,
    )
    result: dict[str, Any] = state.result(raise_on_failure=True)  # type: ignore[assignment]
    stages = result["stages"]
    return {
        **stages,
        "report": result["report"],
        "flow_run_id": str(state.state_details.flow_run_id),
        "state": state.type.value,
        "prefect_api": api or "embedded",
        "prefect_home": None if api else os.environ.get("PREFECT_HOME"),
        "seconds": round(time.monotonic() - began, 2),
    }


def _emit_run(as_json: bool, result: dict[str, Any], where: str | None = None) -> None:
    if as_json:
        emit(True, result)
        return
    from breach_notify.store import report

    stages: dict[str, Any] = {
        k: result[k] for k in ("ingest", "match", "send", "housekeeping") if k in result
    }
    out.print(report.table(result["report"], stages))
    out.print(f"flow run {result['flow_run_id']}: {result['state']} in {result['seconds']}s")
    if where:
        out.print(where, soft_wrap=True, markup=False)


def serve(
    ctx: typer.Context,
    inbox: Path = typer.Option(None, "--inbox", help="Inbox of the nightly ingest."),
    gateway: str = typer.Option(None, "--gateway", help="Gateway of the hourly send."),
    port: int = typer.Option(None, "--port", help="Port of the local Prefect server."),
) -> None:
    """Run the schedules here (ingest nightly, send hourly, housekeeping daily) until Ctrl-C.

    Uses PREFECT_API_URL when set; otherwise starts 'prefect server start' on 127.0.0.1 and
    stops it on exit.
    """
    s = settings(ctx)
    where = inbox if inbox is not None else s.inbox
    if where is not None and not where.is_dir():
        raise BadInput(f"inbox {where} is not a directory; create it or fix --inbox")
    Keyring.load(s.keyring_path)
    orchestration.load()
    from flows import prefect_env
    from flows.serve import PrefectServer, healthy, serve_schedules

    prefect_env.apply(s)

    server: PrefectServer | None = None
    api = os.environ.get("PREFECT_API_URL")
    if api and not healthy(api, timeout=5.0):
        raise OperationalError(f"the Prefect server at PREFECT_API_URL={api} does not answer")
    if where is None:
        err.print("no inbox (--inbox or BREACH_NOTIFY_INBOX): serving without the nightly ingest")
    if not api:
        server = PrefectServer(s, port=port)
        err.print(f"starting a Prefect server on {server.api_url} (log: {server.log_path})")
        api = server.start()
        os.environ["PREFECT_API_URL"] = api
        err.print(f"Prefect API at {api} (started in {server.started_in:.1f}s)")
    previous = signal.signal(signal.SIGTERM, _interrupt)  # stop the server on SIGTERM too
    try:
        home = str(s.home.resolve())
        serve_schedules(s, home, str(where.resolve()) if where else None, gateway or s.gateway)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server is not None:
            server.stop()
            err.print("Prefect server stopped")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def ui(
    ctx: typer.Context,
    port: int = typer.Option(4200, "--port", help="Port on 127.0.0.1 (0: any free port)."),
) -> None:
    """Prefect's UI over this data dir's runs (HOME/prefect) on 127.0.0.1 until Ctrl-C.

    The server gets the same leak-proof environment as the flows (telemetry off, DO_NOT_TRACK).
    Prints the URL on stdout.
    """
    s = settings(ctx)
    if not 0 <= port <= 65535:
        raise BadInput(f"--port {port} is not a TCP port; pass 1-65535, or 0 for any free port")
    database = s.prefect_home / "prefect.db"
    if not database.is_file():
        raise BadInput(
            f"no Prefect runs are recorded under {s.prefect_home} yet; run 'breach-notify "
            f"--home {s.home} demo' or 'run' first, or point --home at the data dir that has them"
        )
    orchestration.load()
    from flows.serve import PrefectServer, port_free

    host = "127.0.0.1"
    if port and not port_free(host, port):
        raise OperationalError(
            f"port {port} on {host} is in use (another Prefect server?); pass --port N, or "
            "--port 0 for any free port"
        )
    if os.environ.get("PREFECT_API_URL"):
        err.print("PREFECT_API_URL is set: that server has its own UI; this one shows HOME's runs")
    server = PrefectServer(s, host=host, port=port or None, ui=True)
    err.print(f"starting Prefect's UI over {s.prefect_home.resolve()} (log: {server.log_path})")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.start()
        out.print(server.ui_url, soft_wrap=True, markup=False)
        err.print(f"started in {server.started_in:.1f}s; Ctrl-C stops it")
        while server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
        raise OperationalError(f"the Prefect server stopped on its own; see {server.log_path}")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
        err.print("Prefect server stopped")


def demo(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """The bundled synthetic breach + subscribers through the whole pipeline, dry-run gateway."""
    from breach_notify.demo import prepare

    s = settings(ctx)
    inbox, subscribers = prepare(s)
    result = run_pipeline(s, inbox=inbox, gateway="dryrun://", rate=1000.0, ignore_quiet_hours=True)
    result["subscribers_import"] = subscribers
    outbox = s.outbox_dir / "dryrun.jsonl"
    result["outbox"] = str(outbox)
    command = Path(sys.executable).parent / "breach-notify"  # whether or not the venv is active
    where = (
        f"\nDry-run outbox (numbers masked): {outbox}\n"
        f"Prefect runs: {command} --home {s.home} ui (then open http://127.0.0.1:4200)\n"
        f"Counts any time: {command} --home {s.home} status"
    )
    _emit_run(as_json, result, where)


def register(app: typer.Typer) -> None:
    """Add ``run``, ``serve``, ``demo`` and ``ui``."""
    app.command("run")(run)
    app.command("serve")(serve)
    app.command("demo")(demo)
    app.command("ui")(ui)
