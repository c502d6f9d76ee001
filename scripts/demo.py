#!/usr/bin/env python3
"""Classify a dozen real error bodies through every surface and print one table.

Each surface offers the same line protocol: JSON lines on stdin
({"status", "headers", "body", "transport", "wall_clock_ms"}), one classification JSON object
per line on stdout. The table shows each case's classification once and whether all six
surfaces (core, C, Go, wasmtime, Python, JS) agreed on every field.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ["kind", "retryable", "retry_after_ms", "limit_tokens", "requested_tokens",
          "provider", "code", "error_type", "message"]

# Cases picked from the conformance vectors: one or more per kind, many providers.
DEMO_CASES_PER_KIND = 1
DEMO_SIZE = 13


def surfaces():
    rel = os.path.join(ROOT, "target", "debug")
    return [
        ("core", [os.path.join(rel, "llmr"), "classify", "--jsonl", "--native"], ROOT),
        ("C", [os.path.join(ROOT, "target", "demo", "classify_jsonl")], ROOT),
        ("Go", [os.path.join(ROOT, "target", "demo", "llmr-go")], ROOT),
        ("wasmtime", [os.path.join(rel, "llmr"), "classify", "--jsonl"], ROOT),
        ("Python", [sys.executable, "-m", "llm_resilience"],
         os.path.join(ROOT, "examples", "python-host")),
        ("JS", ["node", os.path.join(ROOT, "examples", "js-host", "cli.js")], ROOT),
    ]


def load_cases():
    cases = []
    vec_dir = os.path.join(ROOT, "tests", "vectors")
    for name in sorted(os.listdir(vec_dir)):
        if name.startswith("classify") and name.endswith(".json"):
            with open(os.path.join(vec_dir, name), encoding="utf-8") as f:
                cases.extend(json.load(f)["cases"])
    # Show server-directed waits where the vectors have them: those cases first (stable sort).
    cases.sort(key=lambda c: 0 if c["expect"].get("retry_after_ms") else 1)
    picked, seen_kinds, seen_providers = [], {}, set()
    for case in cases:
        kind = case["expect"]["kind"]
        provider = case.get("provider", "")
        if seen_kinds.get(kind, 0) < DEMO_CASES_PER_KIND and provider not in seen_providers:
            picked.append(case)
            seen_kinds[kind] = seen_kinds.get(kind, 0) + 1
            seen_providers.add(provider)
    for case in cases:
        if len(picked) >= DEMO_SIZE:
            break
        if case not in picked and case.get("provider", "") not in seen_providers:
            picked.append(case)
            seen_providers.add(case.get("provider", ""))
    return picked[:DEMO_SIZE]


def run_surface(cmd, cwd, lines):
    proc = subprocess.run(cmd, cwd=cwd, input="".join(lines), capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {proc.stderr.strip()[:500]}")
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    if len(out) != len(lines):
        raise RuntimeError(f"{cmd[0]} printed {len(out)} results for {len(lines)} inputs")
    return out


def main():
    cases = load_cases()
    lines = [json.dumps(case["input"]) + "\n" for case in cases]
    results = {}
    for name, cmd, cwd in surfaces():
        results[name] = [{k: r.get(k) for k in FIELDS} for r in run_surface(cmd, cwd, lines)]
    names = [n for n, _, _ in surfaces()]
    print(f"{len(cases)} real error bodies, classified by {len(names)} surfaces "
          f"({', '.join(names)}):\n")
    header = f"{'case':<44} {'status':>6}  {'kind':<17} {'retry':<5} {'wait ms':>8}  {'same on all':<11}"
    print(header)
    print("-" * len(header))
    disagreements = 0
    for i, case in enumerate(cases):
        first = results["core"][i]
        same = all(results[n][i] == first for n in names)
        disagreements += 0 if same else 1
        status = case["input"].get("status")
        status = "-" if status is None else str(status)
        wait = "-" if first["retry_after_ms"] is None else str(first["retry_after_ms"])
        print(f"{case['name'][:44]:<44} {status:>6}  {first['kind']:<17} "
              f"{'yes' if first['retryable'] else 'no':<5} {wait:>8}  "
              f"{'yes' if same else 'NO':<11}")
        print(f"{'':<4}{first['message'][:100]}")
    print()
    if disagreements:
        for i, case in enumerate(cases):
            for n in names:
                if results[n][i] != results["core"][i]:
                    print(f"{case['name']}: {n} gave {results[n][i]}")
        print(f"{disagreements} case(s) differ between surfaces")
        return 1
    print("Every surface gave the same classification, field for field.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
