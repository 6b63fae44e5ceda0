//! `report.md`: the summary as tables a person can read in a pull request or a terminal.

use std::fmt::Write;

use super::Summary;
use crate::verdict::fmt_us;

fn bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

pub fn render(s: &Summary) -> String {
    let mut o = String::new();
    let verdict = if s.slo.passed { "PASS" } else { "FAIL" };
    let _ = writeln!(o, "# loadgen: {} — {verdict}\n", s.scenario.name);
    if let Some(d) = &s.scenario.description {
        let _ = writeln!(o, "{d}\n");
    }
    let c = &s.config;
    let model = match s.run.target_rate {
        Some(r) => format!("open model, target {r} ops/s"),
        None => "closed model".into(),
    };
    let _ = writeln!(
        o,
        "- target: `{}` ({}{})\n- load: {} users, {model}; warm-up {}, measured {:.1} s{}\n- keyspace: {} accounts × {} sessions, {} client IPs, distribution {}\n- started: {} UTC, scenario file `{}`\n",
        s.target.url,
        s.target.kind,
        if s.target.throwaway {
            ", throwaway server"
        } else {
            ""
        },
        c.load.users,
        c.load.warmup,
        s.run.measured_seconds,
        if s.run.interrupted {
            " (**interrupted**)"
        } else {
            ""
        },
        c.keyspace.users,
        c.keyspace.sessions_per_user,
        c.keyspace.client_ips,
        c.keyspace.distribution,
        s.run.started_utc,
        s.scenario.file,
    );
    if s.run.inject_delay_us > 0 {
        let _ = writeln!(
            o,
            "- **injected delay**: {} inside every operation\n",
            fmt_us(s.run.inject_delay_us)
        );
    }

    let _ = writeln!(
        o,
        "## Verdicts\n\n| check | bound | observed | |\n|---|---|---|---|"
    );
    for v in &s.slo.verdicts {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            v.name,
            v.bound,
            v.observed,
            if v.passed { "pass" } else { "**FAIL**" }
        );
    }

    let _ = writeln!(
        o,
        "\n## Operations\n\nResponse time counts from the intended start (queueing included); service time from the actual send. They are equal in a closed model.\n"
    );
    let _ = writeln!(
        o,
        "| op | count | ops/s | errors | denied | misses | p50 | p90 | p99 | p99.9 | max | service p99 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for (name, st) in &s.ops {
        let r = &st.response;
        let _ = writeln!(
            o,
            "| {name} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            st.count,
            st.throughput,
            st.errors,
            st.denied,
            st.misses,
            fmt_us(r.p50_us),
            fmt_us(r.p90_us),
            fmt_us(r.p99_us),
            fmt_us(r.p99_9_us),
            fmt_us(r.max_us),
            fmt_us(st.service.p99_us)
        );
    }

    let i = &s.invariants;
    let _ = writeln!(
        o,
        "\n## Invariants\n\n| invariant | count |\n|---|---:|\n| lost sessions | {} |\n| rate-limit over-admissions | {} |\n| revoked tokens still validating | {} |\n| token cache misses (informational) | {} |",
        i.lost_sessions,
        i.ratelimit_over_admissions,
        i.revoked_tokens_validating,
        i.token_cache_misses
    );

    if !s.errors.is_empty() {
        let _ = writeln!(o, "\n## Errors\n\n| op | error | count |\n|---|---|---:|");
        for (op, kinds) in &s.errors {
            for (msg, n) in kinds {
                let _ = writeln!(o, "| {op} | {} | {n} |", msg.replace('|', "\\|"));
            }
        }
    }

    let r = &s.redis;
    let _ = writeln!(
        o,
        "\n## Redis {}\n\n| field | before | after | delta |\n|---|---:|---:|---:|",
        r.version
    );
    for (k, after) in &r.after {
        let before = r.before.get(k).copied().unwrap_or(0.0);
        let delta = r.deltas.get(k).map_or(String::new(), |d| format!("{d}"));
        let _ = writeln!(o, "| {k} | {before} | {after} | {delta} |");
    }
    if !r.bytes_per_key.is_empty() {
        let _ = writeln!(
            o,
            "\n### Memory per key (`MEMORY USAGE`)\n\n| kind | mean | samples |\n|---|---:|---:|"
        );
        for (kind, cost) in &r.bytes_per_key {
            let _ = writeln!(
                o,
                "| {kind} | {} | {} |",
                bytes(cost.mean_bytes),
                cost.samples
            );
        }
    }
    if !r.commandstats.is_empty() {
        let _ = writeln!(
            o,
            "\n### Commands during the run\n\n| command | calls | µs/call | failed |\n|---|---:|---:|---:|"
        );
        for (cmd, st) in &r.commandstats {
            let per = if st.calls == 0 {
                0.0
            } else {
                st.usec as f64 / st.calls as f64
            };
            let _ = writeln!(
                o,
                "| {cmd} | {} | {per:.2} | {} |",
                st.calls, st.failed_calls
            );
        }
    }

    let e = &s.environment;
    let _ = writeln!(
        o,
        "\n## Environment\n\n- loadgen {} ({} build), Redis {}, {} CPUs, {}/{}",
        e.loadgen_version, e.build, e.redis_version, e.cpu_count, e.os, e.arch
    );
    if let Some(c) = &e.calibration {
        let _ = writeln!(
            o,
            "- calibration: {:.0} {}/s at concurrency {}",
            c.ops_per_sec, c.command, c.concurrency
        );
    }
    if let Some(rss) = e.loadgen_peak_rss_bytes {
        let _ = writeln!(o, "- loadgen peak RSS: {}", bytes(rss as f64));
    }
    let _ = writeln!(
        o,
        "\nFiles: `summary.json`, `latency.svg`, `latency-<op>.hgrm`, goose's `report.html`."
    );
    o
}
