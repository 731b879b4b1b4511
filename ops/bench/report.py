"""The bench's report: figures with their targets, ratios to the peers, pass or miss (and by how much)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    op: str  # ">=" (at least) or "<" (below)
    value: float

    def text(self, unit: str) -> str:
        return f"{self.op} {fmt(self.value, unit)}"


@dataclass
class Row:
    key: str
    label: str
    value: float | None
    unit: str
    target: Target | None = None
    peers: str = ""
    note: str = ""
    who: str = "the worker"  # whose rate a ratio's miss asks more of (not in the JSON)
    verdict: str = ""  # the result of a row without a numeric target (e.g. "lag bounded")
    result: str = field(default="", init=False)

    def evaluate(self) -> None:
        if self.target is None:
            self.result = self.verdict or ("" if self.value is not None else "n/a")
            return
        if self.value is None:
            self.result = "MISS: not measured" + (f" ({short_text(self.note)})" if self.note else "")
            return
        goal, value, unit = self.target.value, self.value, self.unit
        if self.target.op == ">=":
            if value >= goal:
                self.result = f"pass ({value / goal:.2f}x the target)"
            elif unit == "x":
                self.result = f"MISS: {value / goal:.0%} of target; {self.who} needs {goal / value:.1f}x its rate"
            else:
                short = goal - value
                factor = f"needs {goal / value:.1f}x" if value > 0 else "nothing measured"
                self.result = f"MISS by {fmt(short, unit)} ({value / goal:.0%} of target; {factor})"
        else:
            if value < goal:
                self.result = f"pass ({value / goal:.0%} of the limit)"
            else:
                self.result = f"MISS by {fmt(value - goal, unit)} ({value / goal:.1f}x the limit)"


def short_text(text: str, limit: int = 90) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in {"ev/s", "req/s", "sessions/s", "records/s"}:
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:,.2f} ms" if value < 10 else f"{value:,.1f} ms"
    if unit == "µs":
        return f"{value:,.2f} µs"
    if unit == "s":
        return f"{value:,.2f} s"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.2f} {unit}".strip()


def ratio_text(value: float | None, peers: dict[str, float | None]) -> str:
    parts = []
    for name, other in peers.items():
        if value is not None and other:
            parts.append(f"{value / other:.2f}x {name}")
    return ", ".join(parts)


def render(title: str, sections: list[tuple[str, list[Row]]], notes: list[str]) -> str:
    headers = ("figure", "value", "target", "vs peers", "result")
    for row in (r for _, rows in sections for r in rows):
        row.evaluate()
    widths = [len(h) for h in headers]
    table: list[tuple[str, list[list[str]]]] = []
    for name, rows in sections:
        cells = [
            [r.label, fmt(r.value, r.unit), r.target.text(r.unit) if r.target else "", r.peers, r.result] for r in rows
        ]
        for cell in cells:
            widths = [max(w, len(c)) for w, c in zip(widths, cell, strict=True)]
        table.append((name, cells))
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: list[str]) -> str:
        out = []
        for i, (w, c) in enumerate(zip(widths, cells, strict=True)):
            out.append(f" {c.rjust(w) if i == 1 else c.ljust(w)} ")
        return "|" + "|".join(out) + "|"

    lines_text = [title, sep, line(list(headers)), sep]
    for name, cells in table:
        lines_text.append(line([f"[{name}]", "", "", "", ""]))
        lines_text.extend(line(c) for c in cells)
        lines_text.append(sep)
    lines_text.extend(notes)
    return "\n".join(lines_text)


def rows_json(sections: list[tuple[str, list[Row]]]) -> list[dict[str, Any]]:
    out = []
    for section, rows in sections:
        for row in rows:
            item = asdict(row)
            del item["who"]
            item["section"] = section
            item["target"] = asdict(row.target) if row.target else None
            out.append(item)
    return out


# --- the run's figures and notes ------------------------------------------------------------------


def ratio(value: float | None, other: float | None) -> float | None:
    return value / other if value and other else None


def sections(results: dict[str, Any], errors: dict[str, str], config: Any) -> list[tuple[str, list[Row]]]:
    """The table: issue 8's figures with their targets first, then the peers and ceilings."""
    from config import (
        TARGET_E2V_P99_MS,
        TARGET_EXPORT_VS_RAW,
        TARGET_FOLD_VS_QUIX,
        TARGET_FOLD_VS_RAW,
        TARGET_READS_P99_MS,
        TARGET_READS_VS_CEILING,
        TARGET_REBUILD_VS_RAW,
        TARGET_RSS_MB,
        TARGET_TIMELINE_P99_MS,
    )

    r = results
    fold = r.get("worker_fold", {})
    quix = r.get("peer_quix", {}).get("rate")
    plain = r.get("peer_faust", {}).get("rate")
    raw = r.get("peer_raw", {}).get("rate")
    fold_rate = fold.get("rate") if fold.get("finished") else None
    peers = {"Quix": quix, "raw ceiling": raw, **({"faust-plain": plain} if plain else {})}
    lat = r.get("latency", {})
    reads = r.get("reads", {})
    quiet = r.get("reads_quiet", {})
    ceiling = r.get("serving_ceiling", {}).get("rate")
    opened = r.get("open_loop", {})
    open_lat, open_reads = opened.get("latency", {}), opened.get("reads", {})
    rebuild = r.get("rebuild", {})
    micro = r.get("micro", {})
    rss = r.get("rss", {})
    rate_text = f"{config.rate:,.0f} ev/s"
    fold_error = errors.get("worker fold", "")
    reads_error = errors.get("stream + reads", "") or errors.get("reads while streaming", "")
    ceiling_error = errors.get("peer: serving ceiling", "")
    open_error = errors.get("stream + open-loop reads", "")
    lag = lat.get("lag_events_by_second", [])
    last_third = lag[-max(1, len(lag) // 3) :] if lag else []
    lag_verdict = "" if not lag else ("bounded" if lat.get("lag_bounded") else "GROWING: a backlog")
    rss_skipped = "skipped (--rss-sessions 0)" if not config.rss_sessions else errors.get("worker RSS", "")
    worker_rows = [
        Row(
            "fold_rate",
            "fold of the pre-loaded topic",
            fold_rate,
            "ev/s",
            peers=ratio_text(fold_rate, peers),
            note=fold_error,
        ),
        Row(
            "fold_vs_quix",
            "  fold / Quix Streams",
            ratio(fold_rate, quix),
            "x",
            Target(">=", TARGET_FOLD_VS_QUIX),
            note=fold_error or errors.get("peer: Quix Streams", "") or ("Quix not run" if not quix else ""),
        ),
        Row(
            "fold_vs_raw",
            "  fold / raw decode ceiling",
            ratio(fold_rate, raw),
            "x",
            Target(">=", TARGET_FOLD_VS_RAW),
            note=fold_error or errors.get("peer: raw decode ceiling", "") or ("raw not run" if not raw else ""),
        ),
        Row(
            "pure_batch_fold_rate",
            f"  pure fold_batch, {micro.get('pure_batch_fold_batch', '')}/partition/batch",
            micro.get("pure_batch_fold_rate"),
            "ev/s",
            peers=ratio_text(micro.get("pure_batch_fold_rate"), peers),
        ),
        Row(
            "pure_fold_rate",
            "  pure fold per event (old path)",
            micro.get("pure_fold_rate"),
            "ev/s",
            peers=ratio_text(micro.get("pure_fold_rate"), peers),
        ),
        Row(
            "rebuild_rate",
            "rebuild: changelog records restored",
            rebuild.get("rate"),
            "records/s",
            peers=ratio_text(rebuild.get("rate"), {"raw ceiling": raw}),
            note=errors.get("rebuild from the changelog", ""),
        ),
        Row(
            "rebuild_vs_raw",
            "  rebuild / raw decode ceiling",
            ratio(rebuild.get("rate"), raw),
            "x",
            Target(">=", TARGET_REBUILD_VS_RAW),
            note=errors.get("rebuild from the changelog", "") or ("raw not run" if not raw else ""),
        ),
        Row(
            "rebuild_net_rate",
            "  same, readyz net of a cold start",
            rebuild.get("net_rate"),
            "records/s",
            peers=ratio_text(rebuild.get("net_rate"), {"raw ceiling": raw}),
        ),
        Row("rebuild_seconds", "  rebuild: start to ready", rebuild.get("start_to_ready_seconds"), "s"),
        Row(
            "e2v_open_p99",
            f"event-to-visible p99 @ {rate_text} + open-loop reads, from the worker's restart",
            open_lat.get("changelog_all", {}).get("p99_ms"),
            "ms",
            Target("<", TARGET_E2V_P99_MS),
            note=open_error,
        ),
        Row("e2v_open_p50", "  p50, same events", open_lat.get("changelog_all", {}).get("p50_ms"), "ms"),
        Row(
            "e2v_open_p99_after_warmup",
            f"  p99 without the first {config.latency_warmup:g} s",
            open_lat.get("changelog", {}).get("p99_ms"),
            "ms",
        ),
        Row(
            "open_reads_rate",
            f"  open-loop reads: {opened.get('share', 0.5):.0%} of the worker's read capacity, answered",
            open_reads.get("rate"),
            "req/s",
            peers=f"due {opened['read_rate']:,.0f}/s, capacity {opened['read_capacity']:,.0f}/s" if opened else "",
            note=open_error,
        ),
        Row(
            "open_reads_p99",
            "  open-loop reads p99, from their due time",
            open_reads.get("p99_ms"),
            "ms",
            peers=f"service time p99 {fmt(open_reads['service']['p99_ms'], 'ms')}" if open_reads else "",
        ),
        Row("open_restart", "  worker restart to ready, just before", opened.get("restart_to_ready_seconds"), "s"),
        Row(
            "e2v_p50",
            f"event-to-visible p50 @ {rate_text} + saturating reads",
            lat.get("changelog", {}).get("p50_ms"),
            "ms",
        ),
        Row(
            "e2v_p99",
            "  p99 (closed-loop reads: reported, the target is the open-loop one)",
            lat.get("changelog", {}).get("p99_ms"),
            "ms",
            note=errors.get("stream + reads", ""),
        ),
        Row(
            "fold_lag_saturating_s",
            "  fold lag under them, worst of the phase's last third (s of stream)",
            max(last_third) / config.rate if last_third else None,
            "s",
            peers=f"worst of the phase {max(lag) / config.rate:,.2f} s" if lag else "",
            verdict=lag_verdict,
        ),
        Row("e2v_http_p99", "  same, HTTP poll sample p99", lat.get("http", {}).get("p99_ms"), "ms"),
        Row("e2v_rate", "  stream rate achieved", lat.get("achieved_rate"), "ev/s"),
        Row(
            "reads_rate",
            f"session reads @ concurrency {config.concurrency} + stream (closed loop)",
            reads.get("rate"),
            "req/s",
            peers=ratio_text(reads.get("rate"), {"ceiling": ceiling}),
            note=reads_error,
        ),
        Row(
            "reads_vs_ceiling",
            "  / serving ceiling (same run)",
            ratio(reads.get("rate"), ceiling),
            "x",
            Target(">=", TARGET_READS_VS_CEILING),
            note=reads_error or ceiling_error,
        ),
        Row("reads_p50", "  reads p50", reads.get("p50_ms"), "ms"),
        Row("reads_p99", "  reads p99", reads.get("p99_ms"), "ms", Target("<", TARGET_READS_P99_MS), note=reads_error),
        Row(
            "reads_quiet_rate",
            f"session reads @ concurrency {config.concurrency}, no stream",
            quiet.get("rate"),
            "req/s",
            peers=ratio_text(quiet.get("rate"), {"ceiling": ceiling}),
            note=errors.get("worker reads", ""),
        ),
        Row(
            "reads_quiet_vs_ceiling",
            "  / serving ceiling (same run)",
            ratio(quiet.get("rate"), ceiling),
            "x",
            Target(">=", TARGET_READS_VS_CEILING),
            note=errors.get("worker reads", "") or ceiling_error,
        ),
        Row("reads_quiet_p99", "  reads p99, no stream", quiet.get("p99_ms"), "ms"),
        Row(
            "rss_mb",
            f"worker RSS after folding {rss.get('sessions', config.rss_sessions):,} sessions",
            rss.get("rss_mb"),
            "MB",
            Target("<", TARGET_RSS_MB),
            note=rss_skipped,
        ),
        Row("rss_peak_mb", "  peak RSS (VmHWM)", rss.get("peak_rss_mb"), "MB"),
        Row("data_dir_mb", "  its data folder (stores split in the JSON)", rss.get("data_dir_mb"), "MB"),
        Row("decode_us", "decode+validate one page view", micro.get("decode_page_view_us"), "µs"),
        Row("cold_start", "worker start to ready (empty store)", fold.get("start_to_ready_seconds"), "s"),
        Row("warm_restart", "worker restart to ready (local store)", r.get("worker_warm_restart_seconds"), "s"),
    ]
    peer_rows = [
        Row("quix_rate", "Quix Streams fold", quix, "ev/s", note=errors.get("peer: Quix Streams", "")),
        Row(
            "raw_rate",
            "raw ceiling: consume + decode only",
            raw,
            "ev/s",
            note=errors.get("peer: raw decode ceiling", ""),
        ),
        Row(
            "ceiling_rate",
            f"serving ceiling: aiohttp + one rocksdict get, reads @ concurrency {config.concurrency}",
            ceiling,
            "req/s",
            note=ceiling_error,
        ),
        Row("producer_rate", "bulk producer (loading the topic)", r.get("workload", {}).get("producer_rate"), "ev/s"),
    ]
    if "faust" in config.peers:
        peer_rows.insert(
            1,
            Row(
                "faust_plain_rate",
                "plain faust agent fold",
                plain,
                "ev/s",
                note=errors.get("peer: plain faust agent", ""),
            ),
        )
    for row in peer_rows:
        if row.value is not None and row.key not in ("producer_rate", "ceiling_rate") and fold_rate:
            row.peers = f"worker = {fold_rate / row.value:.2f}x"
        elif row.key == "ceiling_rate" and row.value:
            both = {"no stream": quiet.get("rate"), "with the stream": reads.get("rate")}
            row.peers = ", ".join(f"worker {name} = {v / row.value:.2f}x" for name, v in both.items() if v)
    history_rows = history_section(r, errors, config, TARGET_TIMELINE_P99_MS, TARGET_EXPORT_VS_RAW)
    return [
        ("worker (issue 8 figures)", worker_rows),
        ("history (issue 9)", history_rows),
        ("scale-out (issue 10)", scale_out_section(r, errors)),
        ("peers and ceilings, same topic", peer_rows),
    ]


def scale_out_section(r: dict[str, Any], errors: dict[str, str]) -> list[Row]:
    """Issue 10's figures: three workers on the pre-loaded topic (ops/bench/scaleout.py)."""
    scale = r.get("scale_out", {})
    why = errors.get("scale-out", "")
    routing = scale.get("routing", {})
    owner, forwarded = routing.get("owner", {}), routing.get("forwarded", {})
    timeout = scale.get("session_timeout_s")
    with_standbys = scale.get("failover_with_standbys", {})
    without = scale.get("failover_without_standbys", {})
    over = with_standbys.get("over_session_timeout_s")
    return [
        Row(
            "routed_owner_p99",
            "service read answered by the owner (3 workers), p99",
            owner.get("p99_ms"),
            "ms",
            note=why,
        ),
        Row(
            "routed_forwarded_p99",
            "  read forwarded by a non-owner to the owner, p99",
            forwarded.get("p99_ms"),
            "ms",
            peers=f"owner p50 {owner.get('p50_ms')} / forwarded p50 {forwarded.get('p50_ms')} ms" if owner else "",
            note=why,
        ),
        Row(
            "failover_standby_s",
            f"SIGKILL of an owner -> its sessions read again, standbys on (session timeout {timeout} s)",
            with_standbys.get("seconds"),
            "s",
            peers=restored_text(with_standbys),
            note=why,
        ),
        Row(
            "failover_standby_over_timeout_s",
            "  the same, beyond the session timeout",
            over,
            "s",
            Target("<", 2.0),
            note=why,
        ),
        Row(
            "failover_no_standby_s",
            "  the same without standbys (SESSIONS_STANDBY_REPLICAS=0)",
            without.get("seconds"),
            "s",
            peers=restored_text(without),
            note=why,
        ),
    ]


def restored_text(failover: dict[str, Any]) -> str:
    return f"{failover['changelog_records_restored']:,} changelog records restored" if failover else ""


def history_section(
    r: dict[str, Any], errors: dict[str, str], config: Any, timeline_p99_ms: float, export_vs_raw: float
) -> list[Row]:
    """Issue 9's figures: a long session's timeline and past state on the RSS phase's topic (warm,
    then the first read with the history store deleted), and the export to Parquet."""
    history = r.get("history", {})
    export = r.get("export", {})
    generation = r.get("rebuild_generation", {})
    fold = r.get("worker_fold", {})
    fold_rate = fold.get("rate") if fold.get("finished") else None
    raw = r.get("peer_raw", {}).get("rate")
    long_events = history.get("events_per_session", 100)
    topic = history.get("topic_events") or r.get("rss", {}).get("events")
    if not config.rss_sessions:
        why = "skipped (--rss-sessions 0)"
    else:
        why = errors.get("history", "") or errors.get("worker RSS", "")
    if topic and topic < 1_000_000:
        where = f"{topic:,}-event topic, < 1M"
    elif topic:
        where = f"{topic:,}-event topic"
    else:
        where = "RSS phase's topic"
    timeline, past, cold = history.get("timeline", {}), history.get("at", {}), history.get("cold_first_timeline", {})
    export_error = errors.get("export to Parquet", "")
    return [
        Row(
            "timeline_p50",
            f"timeline ?limit={long_events} of a {long_events}-event session, p50 ({where})",
            timeline.get("p50_ms"),
            "ms",
            note=why,
        ),
        Row(
            "timeline_p99",
            "  timeline p99",
            timeline.get("p99_ms"),
            "ms",
            Target("<", timeline_p99_ms),
            note=why,
        ),
        Row("at_p50", "session ?at= its middle, p50", past.get("p50_ms"), "ms", note=why),
        Row("at_p99", "  ?at= p99", past.get("p99_ms"), "ms", Target("<", timeline_p99_ms), note=why),
        Row("cold_timeline_p50", "first timeline read, history store deleted, p50", cold.get("p50_ms"), "ms"),
        Row("cold_timeline_p99", "  same, p99 (records read from Kafka by offset)", cold.get("p99_ms"), "ms"),
        Row(
            "rebuild_generation_rate",
            "sessionctl rebuild: the pre-loaded topic into a new generation",
            generation.get("rate"),
            "ev/s",
            peers=ratio_text(generation.get("rate"), {"worker fold": fold_rate}),
            note=errors.get("rebuild into a new generation", ""),
        ),
        Row(
            "rebuild_generation_vs_fold",
            "  rebuild / the worker's fold rate (same run)",
            ratio(generation.get("rate"), fold_rate),
            "x",
            Target(">=", 1.0),
            note=errors.get("rebuild into a new generation", ""),
            who="the rebuild",
        ),
        Row(
            "export_rate",
            "export of the pre-loaded topic to Parquet",
            export.get("rate"),
            "ev/s",
            peers=ratio_text(export.get("rate"), {"raw ceiling": raw}),
            note=export_error,
        ),
        Row(
            "export_vs_raw",
            "  export / raw decode ceiling",
            ratio(export.get("rate"), raw),
            "x",
            Target(">=", export_vs_raw),
            note=export_error or errors.get("peer: raw decode ceiling", "") or ("raw not run" if not raw else ""),
            who="the export",
        ),
    ]


def history_notes(results: dict[str, Any]) -> list[str]:
    out = []
    history = results.get("history", {})
    if history:
        out.append(
            f"history: {history['long_sessions']} sessions of {history['events_per_session']} events on a topic of "
            f"{history['topic_events']:,}; one HTTP client (keep-alive), one request at a time, "
            f"{history['timeline'].get('requests')} timed requests of each kind after "
            f"{history['timeline'].get('warmup_requests')} of warm-up; the cold row is the first timeline read of "
            f"each session after the worker restarted with its {history['cold_history_stores_deleted']} history "
            "store folders deleted"
        )
        for name in ("timeline", "at", "cold_first_timeline"):
            statuses = history.get(name, {}).get("statuses", {})
            if set(statuses) - {"200"}:
                out.append(f"history: {name} answers {statuses}")
    export = results.get("export", {})
    if export:
        out.append(
            f"export: {export['how']}, {export['written']:,} events to {export['file_bytes'] / 1e6:,.1f} MB of "
            f"Parquet in {export['seconds']:.2f} s (timed around the call: consumer start, time index, file close); "
            f"after its first batch: {export.get('rate_after_first_batch') or 0:,.0f} ev/s"
        )
    return out


def latency_notes(lat: dict[str, Any], reads: str, config: Any, restarted: bool) -> list[str]:
    """What a stream phase's event-to-visible says: a backlog or a wait, its per-second p50, and
    (the open-loop phase, which starts at the worker's restart) whether the slow seconds are the first."""
    out: list[str] = []
    if not lat:
        return out
    where = f"latency ({reads})"
    if lat.get("not_visible"):
        out.append(f"{where}: {lat['not_visible']} events never became visible in the changelog")
    first, last = lat.get("changelog_first_tenth_p50_ms"), lat.get("changelog_last_tenth_p50_ms")
    p50 = lat.get("changelog", {}).get("p50_ms")
    series = ", ".join("—" if v is None else f"{v:,.0f}" for v in lat.get("changelog_p50_ms_by_second", []))
    if first is not None and last is not None and last > max(100.0, 3 * first):
        out.append(
            f"{where}: the worker did not keep up with {config.rate:,.0f} ev/s: p50 grew from {first:,.0f} ms "
            f"(first tenth of the events) to {last:,.0f} ms (last tenth): the figures measure its backlog"
        )
    elif p50 is not None and p50 > 100.0:
        busy = lat.get("worker_cpus_busy", 0.0)
        why = (
            "it is CPU-bound at this rate (a backlog)"
            if busy >= 0.9
            else "it is not CPU-bound, so events wait in a buffer or a periodic stall, not for the fold"
        )
        out.append(
            f"{where}: a p50 of {p50:,.0f} ms is time events wait inside the worker; it used {busy:.2f} CPU "
            f"during the phase: {why}"
        )
    if series:
        out.append(f"{where}: p50 per second of the phase, warm-up included (ms): {series}")
    tail = ", ".join("—" if v is None else f"{v:,.0f}" for v in lat.get("changelog_p99_ms_by_second", []))
    if tail:
        out.append(f"{where}: p99 per second (ms): {tail}")
    busy = ", ".join(f"{v:.2f}" for v in lat.get("worker_cpus_busy_by_second", []))
    if busy:
        out.append(f"{where}: the worker's CPUs busy per second (a slow second at low CPU is a wait, not work): {busy}")
    lag = lat.get("lag_events_by_second", [])
    if lag:
        out.append(
            f"{where}: fold lag, worst per second (events sent, not yet visible): "
            f"{', '.join(f'{v:,}' for v in lag)}; "
            + ("bounded" if lat.get("lag_bounded") else "its last third is the worst: a backlog")
            + ("; the fold group caught up after the phase" if lat.get("worker_caught_up") else
               "; the fold group had NOT caught up 60 s after the phase")
        )  # fmt: skip
    by_second = [v for v in lat.get("changelog_p50_ms_by_second", []) if v is not None]
    if len(by_second) >= 6:
        third = len(by_second) // 3
        early, late = max(by_second[:third]), max(by_second[-third:])
        if early > 3 * late:
            cause = (
                "the phase starts at the worker's restart (its caches cold) with the reads and the stream"
                if restarted
                else f"{config.concurrency} readers and the stream start at once"
            )
            out.append(
                f"why ({where}): the slow seconds are the phase's first ones (worst p50 {early:,.0f} ms, against "
                f"{late:,.0f} ms in the last third): {cause}; the tail settles, it does not grow"
            )
    return out


def serving_notes(results: dict[str, Any], cpu: dict[str, dict[str, float]], config: Any) -> list[str]:
    """How the serving ceiling and the open-loop reads were taken, and when their figures are suspect."""
    out = []
    ceiling = results.get("serving_ceiling", {})
    quiet = results.get("reads_quiet", {})
    if ceiling:
        out.append(
            f"ceiling: peers/serve_ceiling.py (aiohttp, one rocksdict get, the worker's body and headers) on the "
            f"worker's {config.partitions} partition stores as its fold left them (opened read-only, the worker "
            f"stopped), under the worker's closed-loop load ({ceiling.get('concurrency')} connections, "
            f"{ceiling.get('seconds'):g} s after {ceiling.get('warmup_seconds'):g} s): {ceiling.get('rate', 0):,.0f} "
            f"req/s, p99 {fmt(ceiling.get('p99_ms'), 'ms')}; the worker, just restarted, no stream: "
            f"{quiet.get('rate', 0):,.0f} req/s, p99 {fmt(quiet.get('p99_ms'), 'ms')}"
        )
    # The two are taken one after the other: other processes busy in one and not the other move the ratio.
    apart = [cpu.get(phase, {}).get("foreign_cpus_busy") for phase in ("serving-ceiling", "worker-reads")]
    if None not in apart and abs(apart[0] - apart[1]) > 0.25:
        out.append(
            f"ceiling: other processes kept {apart[0]:.2f} CPUs busy while the ceiling was read and {apart[1]:.2f} "
            "while the worker was: the worker/ceiling ratios of this run compare unlike conditions"
        )
    for name, load in (("ceiling", ceiling), ("reads, no stream", quiet)):
        if load and load.get("client_cpu_share", 0) > 0.85:
            out.append(
                f"{name}: the load client used {load['client_cpu_share']:.0%} of a CPU: the figure may be client-bound"
            )
        if load and set(load.get("statuses", {})) - {"200"}:
            out.append(f"{name}: non-200 answers {load['statuses']}")
    opened = results.get("open_loop", {})
    reads = opened.get("reads", {})
    if reads:
        source = "with the stream" if opened.get("read_capacity_from") == "reads" else "without the stream"
        out.append(
            f"open loop: {reads['requests']:,} reads due at {opened['read_rate']:,.0f}/s ({opened['share']:.0%} of the "
            f"worker's closed-loop rate {source}, {opened['read_capacity']:,.0f} req/s) on {reads['connections']} "
            f"connections, from the worker's /readyz on (restart to ready {opened['restart_to_ready_seconds']:.2f} s); "
            f"latency from each read's due time p50 {fmt(reads.get('p50_ms'), 'ms')}, p99 "
            f"{fmt(reads.get('p99_ms'), 'ms')}, max {fmt(reads.get('max_ms'), 'ms')}; from its send (what a "
            f"closed-loop client reports) p99 {fmt(reads['service'].get('p99_ms'), 'ms')}; deepest client queue "
            f"{reads.get('deepest_queue')}, unanswered {reads.get('unanswered')}"
        )
        by_second = ", ".join("—" if v is None else f"{v:,.0f}" for v in reads.get("p99_ms_by_second", []))
        out.append(f"open loop: reads p99 per second from the restart (ms): {by_second}")
        if reads.get("client_cpu_share") and reads["client_cpu_share"] > 0.85:
            share = reads["client_cpu_share"]
            out.append(f"open loop: the load client used {share:.0%} of a CPU: its schedule may slip")
        if set(reads.get("statuses", {})) - {"200"}:
            out.append(f"open loop: non-200 answers {reads['statuses']} (0: unanswered)")
    return out


def notes(
    results: dict[str, Any],
    checks: dict[str, Any],
    errors: dict[str, str],
    cpu: dict[str, dict[str, float]],
    config: Any,
    nproc: int | None,
) -> list[str]:
    out = check_notes(checks)
    if checks.get("dead_letters"):
        out.append(f"CHECK FAILED: {checks['dead_letters']} records went to the dead-letter topic")
    lat, open_lat = results.get("latency", {}), results.get("open_loop", {}).get("latency", {})
    out.extend(latency_notes(lat, "saturating reads", config, restarted=False))
    out.extend(latency_notes(open_lat, "open-loop reads", config, restarted=True))
    out.extend(serving_notes(results, cpu, config))
    fold_done = results.get("worker_fold", {})
    fold_rate = fold_done.get("rate") if fold_done.get("finished") else None
    pure = results.get("micro", {}).get("pure_batch_fold_rate")
    quix = results.get("peer_quix", {}).get("rate")
    raw = results.get("peer_raw", {}).get("rate")
    if fold_rate and pure and quix and raw:
        out.append(
            f"why (fold): the fold code alone (fold_batch in one process: no Kafka, no RocksDB) runs at {pure:,.0f} "
            f"ev/s, {pure / quix:.2f}x Quix and {pure / raw:.2f}x the raw ceiling; the worker's loop reaches "
            f"{fold_rate / pure:.0%} of it. Targets above the fold code's own rate need a cheaper fold "
            "(decode, apply with its transformers, encode), not a faster loop"
        )
    for name, phase in (("saturating reads", lat), ("open-loop reads", open_lat)):
        if phase.get("achieved_rate") is not None and phase["achieved_rate"] < 0.95 * config.rate:
            out.append(f"latency ({name}): the producer reached only {phase['achieved_rate']:,.0f} ev/s")
    reads = results.get("reads", {})
    if reads and reads.get("client_cpu_share", 0) > 0.85:
        out.append(
            f"reads: the load client used {reads['client_cpu_share']:.0%} of a CPU: the figure may be client-bound"
        )
    if reads and set(reads.get("statuses", {})) - {"200"}:
        out.append(f"reads: non-200 answers {reads['statuses']}")
    fold = results.get("worker_fold", {})
    if fold.get("fold_seconds"):
        out.append(
            f"fold: timed from /readyz (or the first changelog record, if earlier) to the changelog record that "
            f"brought the last session to its final count: {fold['fold_seconds']:.2f} s"
        )
    rebuild = results.get("rebuild", {})
    if rebuild.get("restored_records") is not None:
        out.append(
            f"rebuild: {rebuild['restored_records']:,} records restored in {rebuild['restore_seconds']:.2f} s over "
            f"{rebuild['partitions_logged']} partitions (worker log lines; the changelog held "
            f"{rebuild['changelog_records']:,} records, batch markers included)"
        )
    rss = results.get("rss", {})
    if rss and config.rss_sessions and config.rss_sessions < 1_000_000:
        out.append(f"rss: {config.rss_sessions:,} sessions, not the 1,000,000 of the budget: indicative only")
    if rss.get("long_sessions"):
        out.append(
            f"rss: the worker folded {rss['events']:,} events: {rss['sessions']:,} one-event sessions and "
            f"{rss['long_sessions']} sessions of {rss['long_session_events']} events spread evenly through them "
            "(the history phase's)"
        )
    out.extend(history_notes(results))
    out.extend(noise_notes(cpu, nproc))
    out.extend(error_notes(errors))
    if config.quick:
        out.append("quick mode: sizes too small for figures to mean much; use `make bench` for them")
    return out


def check_notes(checks: dict[str, Any]) -> list[str]:
    return [
        f"CHECK FAILED {name}: {check}"
        for name, check in checks.items()
        if isinstance(check, dict) and not check.get("ok", True)
    ]


def noise_notes(cpu: dict[str, dict[str, float]], nproc: int | None) -> list[str]:
    """Phases during which other processes than the bench's kept more than a quarter of a CPU busy."""
    return [
        f"noise: during {phase} other processes kept {used['foreign_cpus_busy']:.2f} CPUs busy "
        f"(of {nproc}): figures of that phase are pessimistic"
        for phase, used in cpu.items()
        if used.get("foreign_cpus_busy", 0) > 0.25
    ]


def error_notes(errors: dict[str, str]) -> list[str]:
    return [f"ERROR {name}: {short_text(error, 160)}" for name, error in errors.items()]


# --- issue 24's cost at scale (run.py --scale, ops/bench/scale.py) --------------------------------

# What each step of a size needs first: a figure not measured says why with the first error found.
SCALE_NEEDS = {
    "fold": ("produce", "fold"),
    "reads": ("produce", "fold", "reads"),
    "disk": ("produce", "fold", "disk"),
    "restore": ("produce", "fold", "restore"),
    "export": ("produce", "export"),
    "rebuild": ("produce", "rebuild"),
    "produce": ("produce",),
}


def scale_error(size: dict[str, Any], step: str) -> str:
    errors = size.get("errors", {})
    return next((f"{name}: {errors[name]}" for name in SCALE_NEEDS[step] if errors.get(name)), "")


def per_million(value: float | None, count: int | None) -> float | None:
    """``value`` for ``count`` things, per million of them."""
    return value / count * 1e6 if value is not None and count else None


def dig(size: dict[str, Any], *path: str) -> Any:
    found: Any = size
    for name in path:
        found = found.get(name) if isinstance(found, dict) else None
    return found


@dataclass(frozen=True)
class ScaleFigure:
    """One figure measured at both sizes: ``rate`` ones get a row of their ratio (scale / default)
    with the issue's >= TARGET_SCALE_VS_DEFAULT; the others carry their own target, if any, and the
    ratio beside them."""

    key: str
    label: str
    unit: str
    step: str  # the step of scale.py that measures it (SCALE_NEEDS)
    path: tuple[str, ...]  # where in results.scale.<size>
    rate: bool = False
    target: Target | None = None
    who: str = "the worker"
    per_million_of: str = ""  # "sessions": the value divided by the size's sessions, x 10^6

    def value(self, size: dict[str, Any]) -> float | None:
        found = dig(size, *self.path)
        if self.per_million_of:
            return per_million(found, dig(size, "disk", self.per_million_of))
        return float(found) if isinstance(found, int | float) else None


def scale_figures() -> list[ScaleFigure]:
    from config import TARGET_RSS_MB, TARGET_TIMELINE_P99_MS

    p99 = Target("<", TARGET_TIMELINE_P99_MS)
    return [
        ScaleFigure("producer_rate", "producer: generate + produce (lz4, acks=all)", "ev/s", "produce",
                    ("producer", "rate")),
        ScaleFigure("fold_rate", "fold of the pre-loaded topic by one worker", "ev/s", "fold", ("fold", "rate"),
                    rate=True),
        ScaleFigure("restore_rate", "restore: data folder lost, changelog records restored", "records/s", "restore",
                    ("restore", "rate"), rate=True),
        ScaleFigure("export_rate", "export of the whole range to Parquet", "ev/s", "export", ("export", "rate"),
                    rate=True, who="the export"),
        ScaleFigure("rebuild_rate", "sessionctl rebuild into a new generation", "ev/s", "rebuild",
                    ("rebuild_generation", "rate"), rate=True, who="the rebuild"),
        ScaleFigure("timeline_p99", "timeline ?limit=100 of an old 100-event session, p99", "ms", "reads",
                    ("history", "timeline", "p99_ms"), target=p99),
        ScaleFigure("at_p99", "  ?at= its middle, p99", "ms", "reads", ("history", "at", "p99_ms"), target=p99),
        ScaleFigure("rss_mb", "worker RSS at rest after the fold", "MB", "fold", ("rss", "rss_mb"),
                    target=Target("<", TARGET_RSS_MB)),
        ScaleFigure("peak_rss_mb", "  peak RSS (VmHWM: the fold's)", "MB", "fold", ("rss", "peak_rss_mb")),
        ScaleFigure("store_mb_per_m", "disk per 1M sessions: session stores", "MB", "disk",
                    ("disk", "session_stores_mb"), per_million_of="sessions"),
        ScaleFigure("history_mb_per_m", "  history stores", "MB", "disk", ("disk", "history_stores_mb"),
                    per_million_of="sessions"),
        ScaleFigure("changelog_mb_per_m", "  changelog topic on the broker", "MB", "disk", ("disk", "changelog_mb"),
                    per_million_of="sessions"),
    ]  # fmt: skip


def scale_section(scale: dict[str, Any]) -> list[Row]:
    """Each figure at the scale size, with the default size's beside it and their ratio; the rates'
    ratios judged against the issue's >= 0.8x, the latency and RSS against their own limits."""
    from config import TARGET_SCALE_VS_DEFAULT

    small, big = scale.get("default", {}), scale.get("scale", {})
    small_events = small.get("events", 0)
    rows: list[Row] = []
    for figure in scale_figures():
        value, other = figure.value(big), figure.value(small)
        times = ratio(value, other)
        peers = f"{small_events:,} events: {fmt(other, figure.unit)}" if other is not None else ""
        if peers and times is not None and not figure.rate:
            peers += f" ({times:.2f}x)"
        note = scale_error(big, figure.step)
        rows.append(Row(f"scale_{figure.key}", figure.label, value, figure.unit, figure.target, peers, note))
        if figure.rate:
            rows.append(
                Row(
                    f"scale_{figure.key}_vs_default",
                    f"  / the same at {small_events:,} events (same run)",
                    times,
                    "x",
                    Target(">=", TARGET_SCALE_VS_DEFAULT),
                    note=note or scale_error(small, figure.step),
                    who=figure.who,
                )
            )
    return rows


def scale_title(scale: dict[str, Any], quick: bool) -> str:
    small, big = scale.get("default", {}), scale.get("scale", {})
    return (
        f"--scale{' (quick)' if quick else ''}: {big.get('events', 0):,} events / {big.get('sessions', 0):,} "
        f"sessions beside {small.get('events', 0):,} / {small.get('sessions', 0):,}"
    )


def scale_why(figure: ScaleFigure, small: dict[str, Any], big: dict[str, Any]) -> str:
    """Why a rate's ratio misses, from the run's own data: the CPU the process doing the work used per
    event at each size. More CPU per event: more work per event at that size. The same CPU per event
    at a lower rate: the process waited (for the disk, the broker, its stores' compactions)."""
    step = {"fold": "fold", "export": "export", "rebuild": "rebuild_generation"}.get(figure.step)
    if step is None:
        return ""
    events = {"fold": "events", "export": "written", "rebuild_generation": "events"}[step]
    rates, cpu_us, busy = [], [], []
    for size in (small, big):
        found = size.get(step, {})
        rate, cpu, count = found.get("rate"), found.get("cpu_seconds"), found.get(events)
        if not (rate and cpu and count):
            return ""
        rates.append(rate)
        cpu_us.append(cpu / count * 1e6)
        busy.append(cpu / (count / rate))
    work = cpu_us[1] / cpu_us[0]
    slower = rates[1] / rates[0]
    text = (
        f"why ({figure.label.strip()}): {cpu_us[1]:,.1f} µs of CPU per event at {big['events']:,} events against "
        f"{cpu_us[0]:,.1f} µs at {small['events']:,} ({work:.2f}x), at {slower:.2f}x the rate: "
    )
    if work * slower >= 0.9:
        return text + "the work per event grew; the same CPU went to fewer events"
    return text + (
        f"the CPU per event explains {1 / work:.2f}x of it, the rest is waiting: the process kept "
        f"{busy[1]:.2f} CPUs busy against {busy[0]:.2f} (the disk, the broker, its stores' compactions)"
    )


def scale_notes(
    scale: dict[str, Any], checks: dict[str, Any], errors: dict[str, str], cpu: dict[str, dict[str, float]],
    nproc: int | None,
) -> list[str]:  # fmt: skip
    from config import TARGET_SCALE_VS_DEFAULT, TARGET_TIMELINE_P99_MS

    small, big = scale.get("default", {}), scale.get("scale", {})
    out = check_notes(checks)
    for size in (small, big):
        producer = size.get("producer")
        if producer:
            out.append(
                f"produce ({size['events']:,} events): generated from a pool of the default mix's events, stamped "
                f"with their own session id, event id and time ({producer['spacing_ms']:g} ms apart), and produced "
                f"as the API's appender does: {producer['records']:,} in {producer['seconds']:.1f} s; the bench's "
                f"own peak RSS by then {fmt(producer.get('bench_peak_rss_mb'), 'MB')}"
            )
    if big:
        out.append(
            f"old sessions: {scale.get('long_sessions')} sessions of 100 events spread through the first "
            f"{scale.get('old_records', 0):,} records of each topic, {big.get('records_after_old_sessions', 0):,} "
            "records after them at the scale size; read by one client, one request at a time, on the worker that "
            "folded them"
        )
        out.append(
            "fold: timed from its changelog at both sizes, from /readyz (or its first record, if earlier) to its "
            "last record; RSS at rest 2 s after the fold group committed the last offset, the peak is VmHWM"
        )
    for figure in scale_figures():
        if figure.rate:
            value, other = figure.value(big), figure.value(small)
            times = ratio(value, other)
            if times is not None and times < TARGET_SCALE_VS_DEFAULT:
                out.append(scale_why(figure, small, big) or f"why ({figure.label}): no CPU figure to tell")
    for key in ("timeline", "at"):
        found, before = dig(big, "history", key), dig(small, "history", key)
        if found and before and found.get("p99_ms") and found["p99_ms"] >= TARGET_TIMELINE_P99_MS:
            moved = found["p50_ms"] / before["p50_ms"] if before.get("p50_ms") else None
            out.append(
                f"why ({key}): p50 {fmt(found['p50_ms'], 'ms')} against {fmt(before['p50_ms'], 'ms')} at the default "
                "size: " + ("every read got slower" if moved and moved > 1.5 else "only the tail got slower")
            )
    disk = big.get("disk", {})
    if disk:
        held = big.get("restore", {}).get("changelog_records")
        per_session = f"; it held {held:,} offsets, {held / disk['sessions']:.2f} a session" if held else ""
        history_per_m = per_million(disk["history_stores_mb"], disk["events"]) or 0.0
        out.append(
            f"disk ({big['events']:,} events, {disk['sessions']:,} sessions): data folder "
            f"{disk['data_dir_mb']:,.1f} MB after the worker stopped (session stores "
            f"{disk['session_stores_mb']:,.1f} MB, history stores {disk['history_stores_mb']:,.1f} MB: "
            f"{history_per_m:,.1f} MB per 1M events); on the broker the changelog {disk['changelog_mb']:,.1f} MB "
            f"as its cleaner left it (compaction keeps one record a session, and may not have run{per_session}), "
            f"the event topic {disk['events_topic_mb']:,.1f} MB"
        )
    out.extend(noise_notes(cpu, nproc))
    out.extend(error_notes(errors))
    if big and big.get("events", 0) < 10_000_000:
        out.append(f"scale size {big['events']:,} events, not the issue's 10,000,000: indicative only")
    return out
