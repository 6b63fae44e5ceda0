//! The command line — the edge where environment and flags become a typed [`RunOptions`]; nothing
//! deeper reads `REDIS_URL` or argv.
//!
//! Precedence: scenario file < `--set key=value` (in order) < `--users` / `--duration` / `--rate`.
//! For the Redis URL, `--redis-url` beats `REDIS_URL`; with neither, a throwaway server is started.
//!
//! Exit codes: 0 every SLO and invariant held; 1 one failed (or the run broke); 2 usage or
//! scenario error; 3 Redis unreachable, authentication or TLS failed, or no server could be
//! started; 130 stopped by Ctrl-C.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::Fatal;
use crate::run::{RunOptions, run};
use crate::scenario;
use crate::target::{UrlSource, parse_url};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Load-test a Redis deployment with an OAuth server's sessions, token cache and rate limits"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a scenario and write results/<scenario>-<UTC time>/
    Run(RunArgs),
    /// Diagnose a Redis deployment: reachability, node states, and an audit of its settings
    /// against the guide (exit 1 on a high-severity finding, 3 if unreachable)
    Doctor(DoctorCliArgs),
    /// Compare a run with a baseline: throughput, p99 and p99.9 per op with confidence
    /// intervals (exit 1 if a metric regressed beyond --max-regression, 2 for unusable inputs)
    Compare(crate::compare::CompareArgs),
    /// Step the offered load until the SLO breaks or throughput stops growing; report the knee
    /// (exit 1 if no step met the SLO)
    Sweep(crate::sweep::SweepArgs),
    /// Measure bytes per session/token/counter and project what fits in a maxmemory (exit 1 if
    /// the scenario's keyspace does not fit)
    Capacity(crate::capacity::CapacityArgs),
    /// Run a workload bigger than maxmemory under each eviction policy: SAFE or UNSAFE for
    /// sessions and rate limits (exit 1 if one is UNSAFE)
    Evict(crate::evict::EvictArgs),
}

#[derive(Args, Debug)]
pub struct DoctorCliArgs {
    /// Redis to diagnose (any REDIS_URL form). Overrides REDIS_URL; one of the two is required.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Output format
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
    /// PEM file of CA certificates to trust for rediss:// (a private CA)
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
}

/// Resolves `loadgen doctor`'s flags: a URL is required (there is nothing to diagnose on a
/// throwaway server), the CA file must be readable.
fn resolve_doctor(
    args: DoctorCliArgs,
    env_url: Option<String>,
) -> Result<crate::doctor::DoctorArgs, Fatal> {
    let raw = args.redis_url.or(env_url).ok_or_else(|| {
        Fatal::usage("loadgen doctor needs a target: pass --redis-url URL or set REDIS_URL")
    })?;
    let url = cache::RedisUrl::parse(&raw).map_err(|e| Fatal::usage(e.to_string()))?;
    let tls_ca_pem =
        match &args.tls_ca {
            Some(p) => Some(std::fs::read(p).map_err(|e| {
                Fatal::usage(format!("--tls-ca {}: cannot read it: {e}", p.display()))
            })?),
            None => None,
        };
    Ok(crate::doctor::DoctorArgs {
        url,
        json: args.format == "json",
        tls_ca_pem,
    })
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Scenario file (TOML), e.g. scenarios/load/smoke.toml
    pub scenario: PathBuf,
    /// Redis to test (any REDIS_URL form). Overrides REDIS_URL. With neither, a throwaway
    /// redis-server is started on a free loopback port and removed at the end.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Concurrent users (load.users)
    #[arg(long, value_name = "N")]
    pub users: Option<u32>,
    /// Measured duration after ramp and warm-up (load.duration), e.g. 60s
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub duration: Option<String>,
    /// Target operations per second across all users: open model (load.rate)
    #[arg(long, value_name = "OPS_PER_S")]
    pub rate: Option<f64>,
    /// Directory under which the results directory is created
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
    /// Override any scenario value by its dotted path, e.g. --set keyspace.users=1000
    /// --set slo.latency.0.max=2ms (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the resolved configuration (secrets redacted) and exit
    #[arg(long)]
    pub dry_run: bool,
    /// Add this delay inside every operation's measured service time (a controlled slowdown, to
    /// prove that a regression gate catches one). Timer resolution is about 1 ms.
    #[arg(long, value_name = "DURATION")]
    pub inject_delay: Option<String>,
    /// PEM bundle of CA certificates to trust for rediss:// (a private CA)
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
}

fn parse_duration(flag: &str, raw: &str) -> Result<Duration, Fatal> {
    humantime::parse_duration(raw).map_err(|e| {
        Fatal::usage(format!(
            "{flag} `{raw}`: {e}: expected a duration like \"10s\", \"500ms\" or \"2m\""
        ))
    })
}

/// Resolves flags, environment and scenario into run options (or the exit for a bad input).
pub fn resolve(args: RunArgs, env_url: Option<String>) -> Result<(RunOptions, bool), Fatal> {
    let mut sets = args.set.clone();
    let mut flag_of = Vec::new();
    if let Some(u) = args.users {
        sets.push(format!("load.users={u}"));
        flag_of.push(("load.users", "--users"));
    }
    if let Some(d) = &args.duration {
        sets.push(format!("load.duration={}", toml_string(d)));
        flag_of.push(("load.duration", "--duration"));
    }
    if let Some(r) = args.rate {
        sets.push(format!("load.rate={r:?}"));
        flag_of.push(("load.rate", "--rate"));
    }
    let scenario = scenario::load(&args.scenario, &sets).map_err(|errors| {
        let lines: Vec<String> = errors
            .iter()
            .map(|e| {
                let mut e = e.clone();
                for (path, flag) in &flag_of {
                    if e.location == format!("--set {path}") {
                        e.location = flag.to_string();
                    }
                }
                e.to_string()
            })
            .collect();
        Fatal::usage(lines.join("\n"))
    })?;
    let inject_delay = args
        .inject_delay
        .as_deref()
        .map(|d| parse_duration("--inject-delay", d))
        .transpose()?;
    let url = match (args.redis_url, env_url.filter(|u| !u.is_empty())) {
        (Some(u), _) => UrlSource::Flag(u),
        (None, Some(u)) => UrlSource::Env(u),
        (None, None) => UrlSource::None,
    };
    // A malformed URL is a usage error even in a dry run.
    parse_url(&url)?;
    Ok((
        RunOptions {
            scenario_file: args.scenario,
            scenario,
            url,
            out: args.out,
            inject_delay,
            tls_ca: args.tls_ca,
        },
        args.dry_run,
    ))
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// The configuration `--dry-run` prints: everything resolved, the URL redacted.
pub fn dry_run_json(o: &RunOptions) -> Result<String, Fatal> {
    let target = match parse_url(&o.url)? {
        Some(u) => json!({ "url": u.to_string(), "throwaway": false }),
        None => json!({
            "throwaway": true,
            "maxmemory": o.scenario.redis.maxmemory,
            "maxmemory_policy": o.scenario.redis.maxmemory_policy,
            "persistence": o.scenario.redis.persistence,
        }),
    };
    serde_json::to_string_pretty(&json!({
        "scenario_file": o.scenario_file.display().to_string(),
        "scenario": o.scenario,
        "target": target,
        "results_under": o.out.display().to_string(),
        "inject_delay": o.inject_delay.map(|d| humantime::format_duration(d).to_string()),
        "tls_ca": o.tls_ca.as_ref().map(|p| p.display().to_string()),
    }))
    .map_err(|e| Fatal::usage(e.to_string()))
}

/// `main`, returning the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let args = match cli.command {
        Command::Run(args) => args,
        Command::Compare(args) => return crate::compare::main(args),
        Command::Doctor(args) => {
            let args = match resolve_doctor(args, std::env::var("REDIS_URL").ok()) {
                Ok(a) => a,
                Err(f) => return fail(f),
            };
            return match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(crate::doctor::run(args)),
                Err(e) => fail(Fatal::run(format!("cannot start the async runtime: {e}"))),
            };
        }
        Command::Sweep(a) => {
            return block_on(crate::sweep::run(a, std::env::var("REDIS_URL").ok()));
        }
        Command::Capacity(a) => {
            return block_on(crate::capacity::run(a, std::env::var("REDIS_URL").ok()));
        }
        Command::Evict(a) => {
            return block_on(crate::evict::run(a, std::env::var("REDIS_URL").ok()));
        }
    };
    let (opts, dry_run) = match resolve(args, std::env::var("REDIS_URL").ok()) {
        Ok(r) => r,
        Err(f) => return fail(f),
    };
    if dry_run {
        return match dry_run_json(&opts) {
            Ok(j) => {
                println!("{j}");
                0
            }
            Err(f) => fail(f),
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(Fatal::run(format!("cannot start the async runtime: {e}"))),
    };
    let code = match runtime.block_on(run(opts)) {
        Ok(code) => code,
        Err(f) => fail(f),
    };
    // Users still winding down must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

/// Runs a subcommand to its exit code on a fresh runtime; users still winding down after an
/// attack must not keep the process alive.
fn block_on(command: impl std::future::Future<Output = Result<i32, Fatal>>) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(Fatal::run(format!("cannot start the async runtime: {e}"))),
    };
    let code = runtime.block_on(command).unwrap_or_else(fail);
    runtime.shutdown_timeout(Duration::from_secs(2));
    code
}

fn fail(f: Fatal) -> i32 {
    if f.code != crate::run::EXIT_INTERRUPTED {
        eprintln!("error: {}", f.message.replace('\n', "\nerror: "));
    }
    f.code
}
