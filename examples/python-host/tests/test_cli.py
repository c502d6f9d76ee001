"""``python3 -m llm_resilience``: the JSON-lines classifier used by the cross-surface demo."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import llm_resilience as llmr

HOST_DIR = Path(__file__).resolve().parents[1]

INPUTS = [
    {"status": 429, "headers": {"retry-after": "2"}, "body": '{"error":{"message":"slow down"}}'},
    {"status": 503, "headers": [["content-type", "text/html"]], "body": "<title>503</title>"},
    {"transport": "read tcp 10.0.0.1:443: connection reset by peer"},
    {},
]


def run_cli(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llm_resilience"],
        cwd=HOST_DIR,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_one_classification_per_line(plugin: llmr.Plugin) -> None:
    proc = run_cli("".join(json.dumps(i) + "\n" for i in INPUTS))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(INPUTS)
    for inp, line in zip(INPUTS, lines):
        headers = inp.get("headers")
        if isinstance(headers, dict):
            headers = list(headers.items())
        want = plugin.classify(
            status=inp.get("status"),
            headers=[tuple(h) for h in headers] if headers else None,
            body=inp.get("body", ""),
            transport=inp.get("transport"),
        )
        expected = dataclasses.asdict(want) | {"kind": want.kind.value}
        assert json.loads(line) == expected


def test_a_bad_line_is_reported_and_the_rest_still_run() -> None:
    proc = run_cli('not json\n{"status": "x"}\n{"status": 500}\n')
    assert proc.returncode == 1
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == 3
    assert "error" in out[0] and "error" in out[1]
    assert out[2]["kind"] in {k.value for k in llmr.ErrorKind}


def test_version_flag() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "llm_resilience", "--version"],
        cwd=HOST_DIR, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == llmr.version()
