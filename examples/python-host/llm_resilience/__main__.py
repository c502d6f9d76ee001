"""``python3 -m llm_resilience``: classify failed calls given as JSON lines.

Reads one JSON object per line on stdin, with the fields of a vector's ``input``
(``status``, ``headers`` as an object or a list of pairs, ``body`` as text, ``transport``,
``wall_clock_ms``; each optional), and prints one classification per line on stdout:
``{"kind", "retryable", "retry_after_ms", "limit_tokens", "requested_tokens", "provider",
"code", "error_type", "message"}``. A line that cannot be classified prints ``{"error": …}``
and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any, Optional

from . import Plugin, PluginError


def classify_line(plugin: Plugin, line: str) -> dict[str, Any]:
    """Classifies one JSON input line; returns the classification as a JSON-ready dict."""
    inp = json.loads(line)
    if not isinstance(inp, dict):
        raise ValueError("each line must be a JSON object")
    headers = inp.get("headers")
    if isinstance(headers, dict):
        headers = list(headers.items())
    result = plugin.classify(
        status=inp.get("status"),
        headers=headers,
        body=inp.get("body") or "",
        transport=inp.get("transport"),
        wall_clock_ms=inp.get("wall_clock_ms"),
    )
    out = dataclasses.asdict(result)
    out["kind"] = result.kind.value
    return out


def main(argv: Optional[list[str]] = None) -> int:
    """Runs the JSON-lines classifier; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python3 -m llm_resilience",
        description="Classify failed LLM API calls given as JSON lines on stdin.",
    )
    parser.add_argument("--component", help="the component file (default: $LLMR_COMPONENT, "
                        "else the repository's target/llm-resilience.wasm)")
    parser.add_argument("--version", action="store_true", help="print the component's version")
    args = parser.parse_args(argv)
    try:
        plugin = Plugin(args.component)
    except PluginError as e:
        print(f"llm_resilience: {e}", file=sys.stderr)
        return 2
    if args.version:
        print(plugin.version())
        return 0
    status = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            out = classify_line(plugin, line)
        except (ValueError, TypeError, PluginError) as e:
            out = {"error": f"{type(e).__name__}: {e}"}
            status = 1
        print(json.dumps(out), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
