"""Orchestration: the leak-proof Prefect environment, the inbox, and ``run`` on embedded Prefect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.flows import EmbeddedRun, PrefectDB, clean_env, cli

from breach_notify.errors import BadInput, OperationalError
from breach_notify.ingest import inbox
from breach_notify.settings import Settings
from breach_notify.store import report
from flows import dask_runner, prefect_env

# -- the environment -----------------------------------------------------------------------


def test_environment_is_leak_proof(tmp_path: Path) -> None:
    s = Settings(home=tmp_path / "h")
    env = prefect_env.environment(s, {"PREFECT_TASKS_DEFAULT_NO_CACHE": "false"})
    assert env["PREFECT_HOME"] == str((tmp_path / "h" / "prefect").resolve())
    assert env["PREFECT_TASKS_DEFAULT_NO_CACHE"] == "true"  # forced over the operator's value
    assert env["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] == "false"
    assert env["PREFECT_LOGGING_LOG_PRINTS"] == "false"
    assert env["DO_NOT_TRACK"] == "1" and env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] == "90"
    remote = prefect_env.environment(s, {"PREFECT_API_URL": "http://127.0.0.1:4200/api"})
    assert "PREFECT_HOME" not in remote and remote["PREFECT_API_URL"].endswith("/api")


def test_logging_config_filters_every_handler() -> None:
    config = yaml.safe_load(prefect_env.LOGGING_CONFIG.read_text())
    assert config["filters"]["redact"]["()"] == "breach_notify.redact.RedactingFilter"
    assert {"console", "api", "worker_api", "debug"} <= set(config["handlers"])
    for name, handler in config["handlers"].items():
        assert handler.get("filters") == ["redact"], name


# -- tasks' exception scrubbing ------------------------------------------------------------


def test_scrubbed_withholds_foreign_text_and_links() -> None:
    from flows.tasks import StageBadInput, StageFailed, scrubbed

    @scrubbed
    def boom() -> None:
        raise ValueError("Conversion Error: could not convert '+12025550123'")

    with pytest.raises(StageFailed) as info:
        boom()
    assert "2025550123" not in str(info.value) and "ValueError" in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None

    @scrubbed
    def bad() -> None:
        raise BadInput("inbox x is not a directory; create it")

    with pytest.raises(StageBadInput) as info2:
        bad()
    assert info2.value.exit_code == 2 and "create it" in str(info2.value)

    @scrubbed
    def ours() -> None:
        raise OperationalError("gateway said +12025550123 is busy")

    with pytest.raises(StageFailed) as info3:
        ours()
    assert "2025550123" not in str(info3.value)


# -- inbox ---------------------------------------------------------------------------------


def _folder(root: Path, name: str, manifest: str, *files: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "breach.toml").write_text(manifest)
    for f in files:
        (d / f).write_text("x\n")
    return d


def test_inbox_reads_folders(tmp_path: Path) -> None:
    _folder(
        tmp_path,
        "b-2",
        'title = "Two"\nformat = "csv"\nphone_column = "p"\ndefault_region = "au"\nk = 7\n',
        "a.csv",
        ".hidden",
    )
    _folder(tmp_path, "b-1", 'title = "One"\nformat = "facebook-2021"\n', "x.txt", "y.txt")
    folders = inbox.read_inbox(tmp_path)
    assert [f.breach_id for f in folders] == ["b-1", "b-2"]
    assert [p.name for p in folders[0].files] == ["x.txt", "y.txt"]
    assert folders[1].options.default_region == "AU" and folders[1].options.k == 7
    assert [p.name for p in folders[1].files] == ["a.csv"]


@pytest.mark.parametrize(
    ("name", "manifest", "fix"),
    [
        ("ok", 'title = "T"\nformat = "xls"\n', "unknown format"),
        ("ok", 'format = "csv"\n', "needs a title"),
        ("ok", 'title = "T"\nformat = "csv"\n', "phone_column"),
        ("ok", 'title = "T"\nformat = "facebook-2021"\nk = 0\n', "from 1 to"),
        ("ok", "title = [", "not valid TOML"),
        ("bad id!", 'title = "T"\nformat = "csv"\n', "breach id"),
    ],
)
def test_inbox_refuses_bad_folders(tmp_path: Path, name: str, manifest: str, fix: str) -> None:
    _folder(tmp_path, name, manifest)
    with pytest.raises(BadInput, match=fix):
        inbox.read_inbox(tmp_path)


def test_breach_toml_unknown_key_is_refused_by_name(tmp_path: Path) -> None:
    """A typo (``fromat``) is not silently ignored."""
    _folder(tmp_path, "b", 'title = "T"\nfromat = "csv"\nformat = "facebook-2021"\n')
    with pytest.raises(BadInput, match=r"breach\.toml: unknown key 'fromat'"):
        inbox.read_inbox(tmp_path)


@pytest.mark.parametrize("what", ["folder", "file", "manifest"])
def test_inbox_refuses_symlinks_to_outside_the_inbox(tmp_path: Path, what: str) -> None:
    root, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    elsewhere.mkdir()
    manifest = 'title = "T"\nformat = "facebook-2021"\n'
    if what == "folder":
        root.mkdir()
        _folder(elsewhere, "b", manifest, "x.txt")
        (root / "b").symlink_to(elsewhere / "b")
    else:
        folder = _folder(root, "b", manifest)
        (elsewhere / "x.txt").write_text("x\n")
        (elsewhere / "breach.toml").write_text(manifest)
        if what == "file":
            (folder / "x.txt").symlink_to(elsewhere / "x.txt")
        else:
            (folder / "breach.toml").unlink()
            (folder / "breach.toml").symlink_to(elsewhere / "breach.toml")
    with pytest.raises(BadInput, match=r"symlink to outside the inbox.*FOLLOW_SYMLINKS"):
        inbox.read_inbox(root)
    [folder_read] = inbox.read_inbox(root, follow_symlinks=True)
    assert folder_read.breach_id == "b"


def test_inbox_accepts_symlinks_that_stay_inside(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "b", 'title = "T"\nformat = "facebook-2021"\n', "x.txt")
    (tmp_path / ".store").mkdir()
    (tmp_path / ".store" / "y.txt").write_text("y\n")
    (folder / "y.txt").symlink_to(tmp_path / ".store" / "y.txt")
    [b] = inbox.read_inbox(tmp_path)
    assert [p.name for p in b.files] == ["x.txt", "y.txt"]


def test_follow_symlinks_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BREACH_NOTIFY_INBOX_FOLLOW_SYMLINKS", "true")
    assert Settings().inbox_follow_symlinks is True


def test_inbox_needs_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    with pytest.raises(BadInput, match=r"breach\.toml"):
        inbox.read_inbox(tmp_path)


# -- report --------------------------------------------------------------------------------


def test_report_suppresses_small_cells() -> None:
    assert report.suppress({"sent": 60, "failed": 2, "none": 0}, 50) == {
        "sent": 60,
        "failed": None,
        "none": 0,
    }
    summary = {
        "breaches": [
            {
                "breach": "b",
                "title": "T|x",
                "rows": 5,
                "invalid": 1,
                "duplicate": 0,
                "distinct": 4,
                "new": 4,
                "k": 50,
                "exposed": {"name": None, "phone": 60},
            }
        ],
        "notices": {"sent": None},
        "notices_total": 3,
        "notice_k": 50,
        "subscribers_total": 3,
    }
    md = report.markdown(summary, {"send": {"sent": 3}})
    assert "name <50" in md and "phone 60" in md and "sent <50" in md and "T\\|x" in md


# -- task runners --------------------------------------------------------------------------


def test_dask_needs_a_real_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with pytest.raises(BadInput, match="real Prefect server"):
        dask_runner.check("dask")
    with pytest.raises(BadInput, match="--task-runner dask"):
        dask_runner.check("threads", "tcp://127.0.0.1:8786")
    with pytest.raises(BadInput, match="unknown task runner"):
        dask_runner.check("ray")
    dask_runner.check("threads")


def test_run_refuses_bad_input_before_prefect_starts(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "keys", "init").code == 0
    res = cli(home, "run", "--inbox", str(tmp_path / "nope"), "--gateway", "dryrun://", "--json")
    assert res.code == 2 and "not a directory" in res.json["error"]
    _folder(tmp_path / "inbox", "b1", 'title = "T"\nformat = "xls"\n')
    res = cli(home, "run", "--inbox", str(tmp_path / "inbox"), "--gateway", "dryrun://", "--json")
    assert res.code == 2 and "unknown format" in res.json["error"]
    res = cli(home, "run", "--gateway", "carrier-pigeon://", "--json")
    assert res.code == 2 and "gateway URL scheme" in res.json["error"]
    assert not (home / "prefect").exists()  # nothing of Prefect was started


# -- the embedded pipeline -----------------------------------------------------------------


def test_pipeline_sends_expected_notices(run_once: EmbeddedRun) -> None:
    first = run_once.first
    assert first.code == 0, first.stderr[-3000:]
    out = first.json
    sample = run_once.sample
    assert out["state"] == "COMPLETED" and out["prefect_api"] == "embedded"
    by_breach = {b["breach"]: b for b in out["ingest"]["breaches"]}
    assert {b: r["distinct_numbers"] for b, r in by_breach.items()} == sample.distinct
    assert {b: r["rows_read"] for b, r in by_breach.items()} == sample.rows
    assert out["match"]["new_notices"] == sample.expected_notices
    assert out["send"]["sent"] == sample.expected_notices
    lines = (run_once.home / "outbox" / "dryrun.jsonl").read_text().splitlines()
    assert len(lines) == sample.expected_notices
    assert all("*" in json.dumps(json.loads(line)) for line in lines)  # masked numbers
    assert out["report"]["notices_total"] == sample.expected_notices


def test_rerun_changes_nothing(run_once: EmbeddedRun) -> None:
    second = run_once.second
    assert second.code == 0, second.stderr[-3000:]
    out = second.json
    assert out["ingest"]["breaches"] == [] and out["ingest"]["files_skipped"] == 2
    assert out["match"]["new_notices"] == 0 and out["send"]["sent"] == 0
    lines = (run_once.home / "outbox" / "dryrun.jsonl").read_text().splitlines()
    assert len(lines) == run_once.sample.expected_notices


def test_flow_runs_and_artifact_in_prefect_db(run_once: EmbeddedRun) -> None:
    db = PrefectDB(run_once.home / "prefect" / "prefect.db")
    runs = db.rows(
        "SELECT f.name, r.state_type, r.parent_task_run_id IS NULL FROM flow_run r"
        " JOIN flow f ON f.id = r.flow_id ORDER BY r.created"
    )
    pipelines = [r for r in runs if r[0] == "pipeline"]
    assert len(pipelines) == 2 and all(r[1] == "COMPLETED" for r in pipelines)
    ours = [r for r in runs if r[0] != "control"]  # the leak test's controls may have run
    assert {r[0] for r in ours} == {
        "pipeline",
        "ingest-inbox",
        "match-subscribers",
        "send-notices",
        "housekeeping",
    }
    assert all(r[1] == "COMPLETED" for r in ours)
    ids = {run_once.first.json["flow_run_id"], run_once.second.json["flow_run_id"]}
    found = {str(r[0]).replace("-", "") for r in db.rows("SELECT id FROM flow_run")}
    assert {i.replace("-", "") for i in ids} <= found
    artifacts = db.rows("SELECT key, type, data FROM artifact WHERE key = 'breach-notify-report'")
    assert len(artifacts) >= 2 and artifacts[0][1] == "markdown"
    assert "# breach-notify run" in artifacts[0][2] and "demo-fb-us" in artifacts[0][2]
    # Nothing cached or persisted: no task run carries a cache key, storage holds no results.
    assert db.rows("SELECT count(*) FROM task_run WHERE cache_key IS NOT NULL") == [(0,)]
    storage = run_once.home / "prefect" / "storage"
    assert not storage.exists() or not any(p.is_file() for p in storage.rglob("*"))


def test_run_with_dask_and_no_server_fails_fast(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "keys", "init").code == 0
    (tmp_path / "inbox").mkdir()
    res = cli(
        home,
        "run",
        "--inbox",
        str(tmp_path / "inbox"),
        "--gateway",
        "dryrun://",
        "--task-runner",
        "dask",
        "--json",
        env=clean_env(),
        timeout=60,
    )
    assert res.code == 2 and "real Prefect server" in res.json["error"]
    assert res.seconds < 20


def test_run_with_unreachable_server_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli(home, "keys", "init").code == 0
    env = clean_env(PREFECT_API_URL="http://127.0.0.1:9/api")
    res = cli(home, "run", "--gateway", "dryrun://", "--json", env=env, timeout=60)
    assert res.code == 1 and "does not answer" in res.json["error"]
    assert res.seconds < 30


def test_importing_the_flows_applies_the_forced_settings() -> None:
    import subprocess
    import sys

    code = (
        "import flows.pipeline\n"
        "from prefect.settings import get_current_settings as g\n"
        "s = g(); print(s.tasks.default_no_cache, s.results.persist_by_default,"
        " s.logging.log_prints, s.logging.config_path.name)"
    )
    env = clean_env(PREFECT_TASKS_DEFAULT_NO_CACHE="false", PREFECT_LOGGING_LOG_PRINTS="true")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.stdout.split() == ["True", "False", "False", "logging.yml"], proc.stderr
