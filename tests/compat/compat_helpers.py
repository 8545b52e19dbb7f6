"""Helpers for the compatibility tests: running the Java and Node check programs."""

import json
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CONNECTOR_J_JAR = Path("/usr/share/java/mariadb-java-client.jar")
JAVA_DIR = HERE / "java"
NODE_DIR = HERE / "node"


class CheckResults:
    """What an external check program printed: one JSON object per check."""

    def __init__(self, program, results, stdout, stderr, returncode):
        self.program = program
        self.results = results
        self.stdout = stdout
        self.stderr = stderr
        self.returncode = returncode

    def check(self, name):
        """Fails the calling test unless the program reported check `name` as passed."""
        r = self.results.get(name)
        if r is None:
            pytest.fail(f"{self.program}: no result for check {name!r} (exit code "
                        f"{self.returncode})\nstderr:\n{self.stderr[-3000:]}", pytrace=False)
        if not r.get("ok"):
            pytest.fail(f"{self.program} check {name!r} failed: {r.get('detail')}", pytrace=False)
        return r.get("detail")


def run_checks(program, cmd, cwd=None, timeout=120, env=None):
    """Runs a check program; returns CheckResults (a run that times out or dies still
    returns what it printed, and the missing checks then fail one by one)."""
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, env=env)
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired as e:
        out, err, rc = e.stdout or b"", (e.stderr or b"") + f"\ntimed out after {timeout}s".encode(), None
    out = out.decode("utf-8", "replace")
    err = err.decode("utf-8", "replace")
    results = {}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if "check" in item:
                results[item["check"]] = item
    return CheckResults(program, results, out, err, rc)
