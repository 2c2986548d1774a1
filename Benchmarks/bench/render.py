"""What is printed: the number formats, the comparison table, the JetStream figures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from .config import CLK_TCK, FALCO_INGEST_SCENARIOS, JS_SIZE, KV_OBJ_SCENARIOS, OBJ_CHUNK, ROOT
from .plan import Row
from .servers import Server
from .stats import failure_counts


def fmt_rate(v):
    if v is None:
        return "-"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:.3g}{suf}"
    return f"{v:.3g}"


def fmt_mb(v):
    return "-" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.3g}")


def fmt_us(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.3g}s"
    if v >= 1e3:
        return f"{v / 1e3:.3g}ms"
    return f"{v:.3g}us"


def fmt_cpu(v):
    return "-" if v is None else (f"{v:.0f}" if v >= 100 else f"{v:.3g}")


def fmt_ratio(v):
    if v is None:
        return "-"
    return f"{v:.2f}x" if v < 10 else (f"{v:.1f}x" if v < 100 else f"{v:.0f}x")


def render_table(summary: list[dict], servers: list[str]) -> tuple[str, list[str]]:
    cols = ["msgs/s", "MB/s", "p50", "p99", "cpu/1M"]
    widths = [8, 7, 8, 8, 7]
    both = len(servers) == 2
    lw = max([11] + [len(e.get("label") or "") for e in summary])
    head1 = f"{'':2} {'':<{lw}} {'size':>6} {'msgs':>9} "
    head2 = f"{'':2} {'scenario':<{lw}} {'bytes':>6} {'per run':>9} "
    for name in servers:
        block = sum(widths) + len(widths)
        head1 += " " + f" {name} ".center(block - 1, "-") + " "
        head2 += " " + " ".join(c.rjust(w) for c, w in zip(cols, widths)) + " "
    if both:
        head1 += " " + " brokerd/nats ".center(20, "-") + " "
        head2 += " " + " ".join(c.rjust(6) for c in ("tput", "p50", "cpu")) + " "
    head1 += " "
    head2 += " notes"
    lines = [head1.rstrip(), head2.rstrip()]
    footnotes: list[str] = []
    for e in summary:
        mark = "!!" if e["integrity_failed"] else ("E " if e["errors"] else "  ")
        size = f"~{e['size']}" if e["scenario"] == "falco" or "falco" in e.get("label", "") else str(e["size"])
        msgs = next((s["reported_msgs"] for s in e["servers"].values() if s["reported_msgs"]), e["msgs"])
        label = e.get("label") or (e['scenario'] if not e['subs'] else e['scenario'] + '/' + str(e['subs']))
        line = f"{mark} {label:<{lw}} " \
               f"{size:>6} {msgs:>9} "
        notes = []
        for name in servers:
            s = e["servers"].get(name)
            if s is None and name != "brokerd" and e["scenario"] in FALCO_INGEST_SCENARIOS:
                vals = ["-"] * 5  # brokerd only: nats-server has no Falco HTTP endpoint / falco-pipe
            elif s is None or s["ok_rounds"] == 0:
                vals = ["ERR" if s else "n/a"] + ["-"] * 4
            else:
                vals = [fmt_rate(s["msgs_per_sec"]), fmt_mb(s["mb_per_sec"]), fmt_us(s["latency_p50_us"]),
                        fmt_us(s["latency_p99_us"]), fmt_cpu(s["cpu_s_per_million"])]
            line += " " + " ".join(v.rjust(w) for v, w in zip(vals, widths)) + " "
            if s is None:
                continue
            if s["integrity_runs"]:
                notes.append(f"!! {name} LOST={s['lost']} DUP={s['duplicated']} REORD={s['reordered']}"
                             f" ({s['integrity_runs']}/{s['rounds']} runs)")
            if s["errors"]:
                footnotes.append(f"{name} {label}/{e['size']}: " + s["errors"][0]
                                 + (f" (and {len(s['errors']) - 1} more)" if len(s["errors"]) > 1 else ""))
                notes.append(f"ERR {name} {len(s['errors'])}/{s['rounds']} failed [{len(footnotes)}]")
            if s["tool_notes"]:
                footnotes.append(f"{name} {label}/{e['size']}, tool notes: " + "; ".join(s["tool_notes"][:5])
                                 + (f" (and {len(s['tool_notes']) - 5} more)" if len(s["tool_notes"]) > 5 else ""))
                notes.append(f"{name} notes [{len(footnotes)}]")
        if both:
            r = e["ratios"] or {}
            line += " " + " ".join(fmt_ratio(r.get(k)).rjust(6) for k in ("throughput", "latency_p50", "cpu")) + " "
        line += " " + "; ".join(notes)
        lines.append(line.rstrip())
    return "\n".join(lines), footnotes


def render_js_extras(js: dict, servers: list[str]) -> list[str]:
    out = []
    rec = js.get("recovery") or {}
    if rec:
        n = next((r["msgs"] for r in rec.values()), 0)
        out.append(f"JetStream recovery: {n:,} x {JS_SIZE} B in stream BENCH, SIGTERM, restart on the same store")
        for name in servers:
            r = rec.get(name)
            if not r:
                continue
            if r.get("error"):
                out.append(f"  {name:<12} ERROR: {' '.join(r['error'].split())[:300]}")
                continue
            out.append(f"  {name:<12} first INFO {r['info_seconds']:.3f} s, stream answers with all {n:,} msgs after "
                       f"{r['recovery_seconds']:.3f} s (store {r['store_bytes'] / 1e6:.0f} MB; fill "
                       f"{fmt_rate(r.get('fill_msgs_per_sec'))} msgs/s; SIGTERM took {r['stop_seconds']:.2f} s)")
    disk = js.get("disk") or {}
    if disk:
        n = next((r["alerts"] for r in disk.values()), 0)
        out.append(f"JetStream disk use: {n:,} Falco alerts (the file cycled) in stream BENCHFALCO, after SIGTERM")
        for name in servers:
            r = disk.get(name)
            if not r:
                continue
            if r.get("error"):
                out.append(f"  {name:<12} ERROR: {' '.join(r['error'].split())[:300]}")
                continue
            out.append(f"  {name:<12} {r['du_bytes_per_alert']:.0f} B/alert on disk (du; apparent "
                       f"{r['apparent_bytes_per_alert']:.0f} B) for {r['raw_bytes_per_alert']} B of JSON per alert "
                       f"= {r['du_bytes_per_alert'] / r['raw_bytes_per_alert']:.2f}x; store {r['du_bytes'] / 1e6:.1f} MB "
                       f"in {r['files']} files")
    return out


def render_goals(summary: list[dict], js: dict, bridge: Optional[dict], servers: dict[str, Server],
                 js_servers: dict[str, Server]) -> list[str]:
    """Where each row with a goal stands (issue 13's table): met, BELOW, or not measured in this run."""
    by_key = {e["key"]: e for e in summary if e["servers"]}

    def ratio(key: str) -> Optional[float]:
        e = by_key.get(key)
        return (e.get("ratios") or {}).get("throughput") if e else None

    def value(key: str, server: str, field: str) -> Optional[float]:
        e = by_key.get(key)
        s = e["servers"].get(server) if e else None
        return s.get(field) if s and s.get("ok_rounds") else None

    def idle_rss(group: dict[str, Server], name: str) -> Optional[int]:
        s = group.get(name)
        return next((h.get("idle_rss_kb") for h in s.history if h.get("idle_rss_kb")), None) if s else None

    lines = ["goals (issue 13):"]

    def goal(what: str, got: Optional[float], target: Optional[float], shown: str, higher_is_better: bool = True) -> None:
        if got is None or target is None:
            lines.append(f"  {what:<52} not measured in this run")
            return
        met = got >= target if higher_is_better else got <= target
        lines.append(f"  {what:<52} {shown:<34} {'met' if met else 'BELOW'}")

    r = ratio("jspub/128/w256")
    goal("JetStream publish, window 256, 128 B", r, 1.0, f"{r:.2f}x (goal >= 1.00x)" if r else "")
    r = ratio("jspub/falco/w256")
    goal("JetStream publish of Falco alerts, window 256", r, 1.0, f"{r:.2f}x (goal >= 1.00x)" if r else "")
    b, n = value("jspub/falco/w256", "brokerd", "latency_p99_us"), value("jspub/falco/w256", "nats-server", "latency_p99_us")
    goal("p99 of that publish", b, n, f"{fmt_us(b)} vs {fmt_us(n)}" if b and n else "", higher_is_better=False)
    rec = js.get("recovery") or {}
    b = (rec.get("brokerd") or {}).get("recovery_seconds")
    n = (rec.get("nats-server") or {}).get("recovery_seconds")
    goal("recovery of 1,000,000 x 128 B after SIGTERM", b, n, f"{b:.2f} s vs {n:.2f} s" if b and n else "", higher_is_better=False)
    for label, group in (("idle RSS, plain", servers), ("idle RSS, -js", js_servers)):
        b, n = idle_rss(group, "brokerd"), idle_rss(group, "nats-server")
        goal(label, b, n, f"{b / 1024:.1f} MB vs {n / 1024:.1f} MB" if b and n else "", higher_is_better=False)
    r = ratio("pub/16")
    goal("core pub-only, 16 B", r, 1.0, f"{r:.2f}x (goal >= 1.00x)" if r else "")
    br = (bridge or {}).get("ratio")
    goal("Pub/Sub bridge vs the emulator's own limit", br, 0.9, f"{br:.0%} (goal >= 90%)" if br else "")
    f = value("falcohttp/c4/b1", "brokerd", "msgs_per_sec")
    goal("Falco http_output, one alert per POST, 4 connections", f, 50_000, f"{fmt_rate(f)}/s (goal >= 50k/s)" if f else "")
    # The issue's own row: a stream capturing FALCO.> (each 200 after the fsync); the best of its connection counts.
    captured = [(value(e["key"], "brokerd", "msgs_per_sec"), e["key"].split("/")[1][1:]) for e in summary
                if e["key"].startswith("falcohttpjs/")]
    captured = [(v, c) for v, c in captured if v]
    f, c = max(captured) if captured else (None, "")
    goal("Falco http_output, one alert per POST, with a stream", f, 50_000,
         f"{fmt_rate(f)}/s on {c} conns (goal >= 50k/s)" if f else "")
    return lines


def render_report(a: argparse.Namespace, doc: dict, rows: list[Row], summary: list[dict], servers: dict[str, Server],
                  js_servers: dict[str, Server], versions: dict[str, Optional[str]], tool: Optional[str], *,
                  command: str, cwd: str, commit: Optional[str], host: dict, elapsed: float, interrupted: bool,
                  out_path: Path) -> str:
    """The whole stdout report: the command line and the setup, the table, the one-off figures, the footnotes
    and the notes."""
    js_doc = doc["jetstream"]
    measured = [e for e in summary if e["servers"]]
    table, footnotes = render_table(measured, a.servers)
    integrity_runs, error_runs, js_errors, bridge_error = failure_counts(doc)
    # 1 clock tick is 10 ms: a run under 0.5 s, or whose server used under 0.2 CPU-s, is coarse.
    short = [r for r in doc["runs"] if r["status"] == "ok" and (
        r["result"]["seconds"] < 0.5 or (r["server_cpu_seconds"] is not None and r["server_cpu_seconds"] < 0.2))]

    out = [f"# command: {command}", f"# cwd:     {cwd}"]
    if commit:
        out.append(f"# repo:    {ROOT} @ {commit}")
    for name, s in servers.items():
        out.append(f"# {name + ':':<12} {s.binary} ({versions.get(name) or 'version unknown'})")
    out.append(f"# {'tool:':<12} {tool}")
    out.append(f"# host:    {host['cpus']} CPUs ({host['cpu_model'] or 'unknown'}), {host['system']}; "
               "servers and tool share the machine")
    order = f"alternating {' / '.join(a.servers)}" if len(a.servers) > 1 else f"{a.servers[0]} only"
    out.append(f"# runs:    {a.rounds} round(s) per server, {order}; "
               f"{a.stat} of the rounds; scale {a.scale:g}{'; --msgs %d' % a.msgs if a.msgs else ''}; "
               f"{len(doc['runs'])} runs in {elapsed:.0f}s")
    out.append("# msgs/s: published (pub) or delivered (others); p50/p99 latency; cpu/1M = server CPU s per "
               "1M msgs; ratios brokerd/nats")
    if any(r.brokerd_only for r in rows):
        out.append("# falcohttp/C[xB]: Falco http_output, C keep-alive connections, one request in flight each, B alerts "
                   "per request (JSON lines); falcopipe: `brokerd falco-pipe` fed on stdin. Alerts delivered to a "
                   "FALCO.* subscriber; latency = POST sent / line written -> delivery. brokerd only: nats-server "
                   "has no Falco ingest (\"-\"); falcopipe's cpu/1M is brokerd's alone, not the pipe process's; "
                   "falcohttp+js/C: falcohttp/C with a file stream capturing FALCO.> (brokerd -js), each 200 after the "
                   "alerts' fsync, the stream checked to hold every accepted alert")
    if any(r.scenario in KV_OBJ_SCENARIOS for r in rows):
        out.append("# kvput: kv.put one at a time (latency put -> PubAck); kvget: direct gets one at a time (latency = "
                   "round trip); kvwatch: values delivered/s to a watcher; objput/objget: msgs = the "
                   f"{OBJ_CHUNK // 1024} KiB chunks of one object, MB/s its rate, p50/p99 = seconds per object")
    if measured:
        out.append("")
        out.append(table)
    extras = render_js_extras(js_doc, a.servers)
    if doc["bridge"]:
        import bridge_bench
        extras += bridge_bench.render(doc["bridge"])
    if extras:
        out.append("")
        out += extras
    out.append("")
    out += render_goals(summary, js_doc, doc["bridge"], servers, js_servers)
    if footnotes:
        out.append("")
        for i, f in enumerate(footnotes, 1):
            out.append(f"[{i}] " + " ".join(f.split())[:400])
    for err in doc["startup_errors"]:
        out.append("! startup: " + " ".join(err.split())[:500])
    if short:
        out.append(f"# note: {len(short)} run(s) took under 0.5 s or under 0.2 server CPU-s (CPU is read in "
                   f"{1000 / CLK_TCK:g} ms ticks); their figures are noisy (raise --scale)")
    for name, s in list(servers.items()) + list(js_servers.items()):
        for p in s.history:
            if p.get("killed") or (p.get("exit_code") not in (0, None)):
                out.append(f"# note: {name} pid {p['pid']} exit {p.get('exit_code')}"
                           f"{' after SIGKILL' if p.get('killed') else ''} (log {p['log']})")
    if integrity_runs:
        bar = "!" * 78
        out += ["", bar, f"!! INTEGRITY FAILURE: {integrity_runs} run(s) lost, duplicated or reordered messages "
                         "(rows marked !!)", bar]
    if js_errors:
        out.append(f"\n{js_errors} JetStream recovery/disk measurement(s) failed (see above)")
    if bridge_error:
        out.append("\nthe Pub/Sub bridge measurement failed (see above)")
    if error_runs or doc["startup_errors"]:
        out.append(f"\n{error_runs} run(s) failed (rows marked E / ERR)"
                   + (f"; {len(doc['startup_errors'])} server start failure(s)" if doc["startup_errors"] else ""))
    if interrupted:
        out.append("\n(interrupted: the table is incomplete)")
    out.append(f"\n# raw results and summary: {out_path}")
    return "\n".join(out)
