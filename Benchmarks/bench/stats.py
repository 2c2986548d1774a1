"""The summary: each row's rounds combined per server (--stat), integrity and errors counted, the ratios."""

from __future__ import annotations

import statistics
from typing import Any, Optional

from .plan import Row


def combine(values: list[float], stat: str, higher_is_better: bool) -> Optional[float]:
    values = [v for v in values if v is not None]
    if not values:
        return None
    if stat == "mean":
        return statistics.fmean(values)
    if stat == "best":
        return max(values) if higher_is_better else min(values)
    return statistics.median(values)


def summarise(rows: list[Row], runs: list[dict], servers: list[str], stat: str) -> list[dict]:
    out = []
    for row in rows:
        entry: dict[str, Any] = {"scenario": row.scenario, "size": row.size, "msgs": row.msgs, "subs": row.subs,
                                 "key": row.key, "label": row.label, "window": row.window,
                                 "servers": {}, "ratios": None, "integrity_failed": False, "errors": False}
        for name in servers:
            rs = [r for r in runs if r.get("key", f"{r['scenario']}/{r['size']}") == row.key and r["server"] == name]
            if not rs:
                continue
            good = [r for r in rs if r["status"] in ("ok", "integrity")]
            res = [r["result"] for r in good]
            lat = [x["latency_us"] for x in res if x.get("latency_us")]
            s = {
                "rounds": len(rs), "ok_rounds": len(good),
                "msgs_per_sec": combine([x["msgs_per_sec"] for x in res], stat, True),
                "mb_per_sec": combine([x["mb_per_sec"] for x in res], stat, True),
                "latency_p50_us": combine([l["p50"] for l in lat], stat, False),
                "latency_p99_us": combine([l["p99"] for l in lat], stat, False),
                "cpu_s_per_million": combine([r["cpu_s_per_million"] for r in good], stat, False),
                "lost": sum(int(x["lost"]) for x in res),
                "duplicated": sum(int(x["duplicated"]) for x in res),
                "reordered": sum(int(x["reordered"]) for x in res),
                "integrity_runs": sum(1 for r in rs if r["status"] == "integrity"),
                "errors": [r["error"] for r in rs if r["status"] == "error"],
                "reported_msgs": res[0]["msgs"] if res else None,
                # brokerd-bench's optional extra "notes" (disconnects, slow consumers, server errors, ...)
                "tool_notes": list(dict.fromkeys(
                    str(n) for x in res if isinstance(x.get("notes"), list) for n in x["notes"])),
            }
            entry["servers"][name] = s
            entry["integrity_failed"] |= s["integrity_runs"] > 0
            entry["errors"] |= bool(s["errors"])
        b, n = entry["servers"].get("brokerd"), entry["servers"].get("nats-server")
        if b and n:
            def ratio(k):
                return b[k] / n[k] if b[k] is not None and n[k] else None
            entry["ratios"] = {"throughput": ratio("msgs_per_sec"), "latency_p50": ratio("latency_p50_us"),
                               "cpu": ratio("cpu_s_per_million")}
        out.append(entry)
    return out


def failure_counts(doc: dict) -> tuple[int, int, int, bool]:
    """(runs with an integrity failure, failed runs, failed JetStream recovery/disk figures, bridge failed)."""
    js_doc = doc["jetstream"]
    integrity_runs = sum(1 for r in doc["runs"] if r["status"] == "integrity")
    error_runs = sum(1 for r in doc["runs"] if r["status"] == "error")
    js_errors = sum(1 for part in ("recovery", "disk") for r in (js_doc.get(part) or {}).values() if r.get("error"))
    bridge_error = bool(doc["bridge"] and doc["bridge"].get("error"))
    return integrity_runs, error_runs, js_errors, bridge_error
