"""Threads in Postgres (IKMO_DATABASE_URL): two real `ikmo serve` processes on 127.0.0.1 share
one Postgres server (started here with the system's PostgreSQL, on a free port, data in a
temporary folder): a thread begun on one is listed and continued by the other, and the follow-up
edits the motion the first one made (the LangGraph Postgres checkpointer).

Skipped when PostgreSQL's `initdb` / `pg_ctl` or the `postgres` extra (langgraph-checkpoint-postgres,
psycopg) is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from web_fixtures import wait_for_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    pytest.importorskip("langgraph.checkpoint.postgres", reason="the postgres extra is not installed")
    # Debian keeps PostgreSQL's programs out of PATH, in /usr/lib/postgresql/VERSION/bin.
    path = os.pathsep.join([os.environ.get("PATH", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"))])
    initdb, pg_ctl = shutil.which("initdb", path=path), shutil.which("pg_ctl", path=path)
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    data = Path(tempfile.mkdtemp(prefix="ikmo_pg_"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its own user runs it
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser to start PostgreSQL as its user")
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = data / "db"
    subprocess.run([*as_user, initdb, "-D", str(db), "-U", "ikmo", "--auth=trust"], check=True,
                   capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", str(db), "-w", "-l", str(data / "log"), "-o",
                    f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://ikmo@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(db), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)



def test_two_servers_share_threads(postgres_url: str, server_process, weights_dir: Path, tmp_path: Path) -> None:
    env = {"IKMO_WEIGHTS": str(weights_dir), "IKMO_PREVIEW": "false", "IKMO_CRITIQUE_ROUNDS": "0",
           "IKMO_DATABASE_URL": postgres_url}
    argv = ["serve", "--port", "0", "--out", str(tmp_path / "runs")]
    a, b = server_process(argv, env=env), server_process(argv, env=env)
    tid = httpx.post(a.url + "/v1/threads", timeout=10).json()["id"]
    job = httpx.post(f"{a.url}/v1/threads/{tid}/messages", json={"text": "walk forward 2 meters"}, timeout=30)
    first = wait_for_job(a.url, job.json()["job"])
    assert first["status"] == 200, first
    frames = len(httpx.get(f"{a.url}/v1/player/{first['reply']['id']}", timeout=30).json()["joints"])
    assert any(t["id"] == tid for t in httpx.get(b.url + "/v1/threads", timeout=10).json()["threads"])
    job = httpx.post(f"{b.url}/v1/threads/{tid}/messages", json={"text": "make it slower"}, timeout=30)
    second = wait_for_job(b.url, job.json()["job"])
    assert second["status"] == 200 and "slower" in " ".join(second["reply"]["notes"]), second
    slower = len(httpx.get(f"{b.url}/v1/player/{second['reply']['id']}", timeout=30).json()["joints"])
    assert slower > frames  # B edited the motion A made: the checkpoint is shared
    turns = httpx.get(f"{a.url}/v1/threads/{tid}", timeout=10).json()["turns"]
    assert [t["message"] for t in turns] == ["walk forward 2 meters", "make it slower"]
    assert not (tmp_path / "runs" / "studio.sqlite").exists()
