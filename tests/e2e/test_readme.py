"""The README's walk-through runs as pasted, against a served instance.

Every fenced ``bash`` block of README.md is run, in order, in one bash with ``set -euo
pipefail``, while ``prepaid serve`` answers on a free port (``API`` points there; a reader
uses the default 127.0.0.1:8000). The blocks call ``scripts/run``; here that is a stand-in
that runs this checkout's ``prepaid`` directly (the real script would install the project
into ``.venv`` first, which ``scripts/test`` has already done), so the README's commands
are otherwise exactly what a reader pastes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.e2e.test_serve import ROOT, environment, serving

BLOCK = re.compile(r"^```bash\n(.*?)^```", re.S | re.M)


def readme_blocks() -> list[str]:
    return BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_walkthrough_runs_as_pasted(tmp_path):
    blocks = readme_blocks()
    assert len(blocks) >= 5, "the walk-through's bash blocks are gone from README.md"
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "run").write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" -m api.cli "$@"\n')
    (scripts / "run").chmod(0o755)
    env = {"PREPAID_DATABASE_URL": f"sqlite:///{tmp_path}/prepaid.db"}
    migrated = subprocess.run([sys.executable, "-m", "api.cli", "migrate"], cwd=tmp_path,
                              env=environment(env), capture_output=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr.decode()
    with serving(env, tmp_path) as client:
        script = "set -euo pipefail\n" + "\n".join(blocks)
        ran = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True,
                             timeout=300, env=environment({**env, "API": str(client.base_url).rstrip("/")}))
        output = ran.stdout.decode() + ran.stderr.decode()
        (tmp_path / 'walkthrough.log').write_text(output)
        assert ran.returncode == 0, f"a README block failed:\n{output}"
        # What the walk-through says it did, the server confirms.
        login = client.post("/auth/token", data={
            "username": "admin", "password": (tmp_path / "var/admin-password").read_text().strip()})
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        accounts = client.get("/accounts", headers=headers).json()["items"]
        assert [(a["name"], a["status"]) for a in accounts] == [("Tea House", "closed")]
        trial = client.get("/ledger/trial-balance", headers=headers).json()
        assert trial["total_debit"] == trial["total_credit"]
        statement = client.get(f"/accounts/{accounts[0]['id']}/statement",
                               headers=headers).json()["items"]
        kinds = [entry["kind"] for entry in statement]
        assert kinds.count("top_up") == 3 and "reversal" in kinds  # the replay sold nothing
    lines = [line for line in output.splitlines() if line.strip()]
    assert "170.00" in lines and lines[-1] == "closed"
    approved = json.loads(next(line for line in lines if '"decided_by"' in line))
    assert approved["status"] == "approved"
