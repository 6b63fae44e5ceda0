//! `chaos`: the command line. Parses arguments and experiment files at the edge, runs, and maps
//! every outcome to an exit code an operator or CI can act on:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | every expected check passes |
//! | 1 | a check failed (or judged nothing though expected), or an experiment could not complete |
//! | 2 | usage error: bad flag, bad experiment file (the message names the field) |
//! | 3 | the environment is missing something: Docker engine, image, Redis binaries |
//! | 130 | interrupted with Ctrl-C (after removing every node and directory of the run) |
//! | 143 | terminated with SIGTERM (same cleanup) |

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chaos::repeat::{Aggregate, Repetition};
use chaos::report::results_dir;
use chaos::{
    BackendKind, Event, Experiment, Interrupt, RunError, RunOptions, choose_backend, run_plan,
};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "chaos",
    version,
    about = "Break a Redis topology on purpose and check what the cache stores lost"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    Auto,
    Docker,
    Process,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Where nodes run: Docker containers, local processes, or auto (Docker when the engine
    /// answers and the image is present).
    #[arg(long, value_enum, default_value = "auto")]
    backend: BackendArg,
    /// Redis image for the Docker backend [default: redis:7-alpine, or authority-redis:local when
    /// only that one is present].
    #[arg(long)]
    image: Option<String>,
    /// Run each experiment this many times. Each run keeps its own results directory; after the
    /// last, `chaos-<experiment>-x<N>-<time>/summary.json` and `summary.md` give every run's
    /// figures and min/median/max of failover time, write gap, acked writes lost and wall time.
    /// Exit 1 if any run fails.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: u32,
    /// Directory for `chaos-<experiment>-<time>/` result folders.
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run one experiment file.
    Run {
        experiment: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Run every `*.toml` experiment in a directory, in name order.
    Suite {
        dir: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Judge a recorded run again (its `history.json`) with the same checker as `chaos run`:
    /// same verdict lines, same exit codes.
    Check {
        /// A results directory (`results/chaos-<experiment>-<time>/`) or a `history.json`.
        history: PathBuf,
        /// Judge with the `[expect]` table of this experiment file instead of the recorded one.
        #[arg(long)]
        expect: Option<PathBuf>,
    },
    /// Manage the local Redis image.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build the image from this host's Redis binaries (skipped if it exists).
    Build {
        #[arg(long, default_value = chaos::LOCAL_IMAGE)]
        image: String,
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chaos: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(dispatch(cli));
    drop(runtime);
    ExitCode::from(code)
}

async fn dispatch(cli: Cli) -> u8 {
    match cli.command {
        Command::Run { experiment, common } => match Experiment::load(&experiment) {
            Ok(e) => run_all(vec![e], common).await,
            Err(e) => usage(&e.0),
        },
        Command::Suite { dir, common } => match load_dir(&dir) {
            Ok(list) => run_all(list, common).await,
            Err(msg) => usage(&msg),
        },
        Command::Check { history, expect } => check(&history, expect.as_deref()),
        Command::Image {
            command: ImageCommand::Build { image, force },
        } => match chaos::image::build(&image, force).await {
            Ok(msg) => {
                println!("{msg}");
                0
            }
            Err(msg) => {
                eprintln!("chaos image build: {msg}");
                3
            }
        },
    }
}

/// `chaos check`: load, judge, print like `chaos run`.
fn check(history: &Path, expect: Option<&Path>) -> u8 {
    let mut recorded = match chaos::recorded::Recorded::load(history) {
        Ok(r) => r,
        Err(e) => return usage(&e.0),
    };
    if let Some(file) = expect {
        match Experiment::load(file) {
            Ok(e) => recorded.experiment.expect = e.expect,
            Err(e) => return usage(&e.0),
        }
    }
    let verdict = chaos::checker::judge(&recorded);
    let name = &recorded.experiment.name;
    println!(
        "{}",
        chaos::report::verdict_line(name, "recorded", &verdict)
    );
    print_failed_checks(&verdict);
    u8::from(!verdict.pass)
}

/// The checks that make a run fail, one line each.
fn print_failed_checks(verdict: &chaos::checker::Verdict) {
    for c in verdict.checks.iter().filter(|c| c.fails_run()) {
        let what = if c.status == chaos::checker::Status::Fail {
            "FAILED"
        } else {
            "NOT CHECKED"
        };
        println!(
            "  {what} {}: expected {}, checked {}, measured {}",
            c.name, c.expected, c.checked, c.measured
        );
    }
}

fn usage(msg: &str) -> u8 {
    eprintln!("chaos: {msg}");
    2
}

fn load_dir(dir: &Path) -> Result<Vec<Experiment>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read experiment directory {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(format!("no *.toml experiment in {}", dir.display()));
    }
    // Validate every file before running any: a typo in the last one should not cost a 3-minute run.
    paths
        .iter()
        .map(|p| Experiment::load(p).map_err(|e| e.0))
        .collect()
}

async fn run_all(experiments: Vec<Experiment>, common: Common) -> u8 {
    // Listen before anything starts: a signal during the Docker probe or between two experiments
    // must not be lost (see chaos::guard).
    let mut interrupt = match Interrupt::ctrl_c_and_term() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("chaos: cannot listen for Ctrl-C: {e}");
            return 1;
        }
    };
    let backend = match common.backend {
        BackendArg::Auto => None,
        BackendArg::Docker => Some(BackendKind::Docker),
        BackendArg::Process => Some(BackendKind::Process),
    };
    let (backend, image, why) = match choose_backend(backend, common.image.as_deref()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chaos: {e}");
            return 3;
        }
    };
    eprintln!("chaos: backend {backend:?} ({why})");
    // A suite on the process backend runs what it can; a partition alone is a usage error.
    let (experiments, refused): (Vec<Experiment>, Vec<Experiment>) = experiments
        .into_iter()
        .partition(|e| backend == BackendKind::Docker || !e.topology.bridge_network);
    for e in &refused {
        let msg = format!(
            "{}: fault action `partition` needs --backend docker (the process backend's nodes \
             all share the host's loopback, which cannot be cut in two)",
            e.name
        );
        if experiments.is_empty() {
            return usage(&msg);
        }
        eprintln!("chaos: skipped {msg}");
    }
    let opts = RunOptions {
        backend,
        image,
        results_root: common.results.clone(),
    };
    let repeat = common.repeat as usize;
    let plan: Vec<Experiment> = experiments
        .iter()
        .flat_map(|e| std::iter::repeat_n(e.clone(), repeat))
        .collect();
    let total = plan.len();
    let names: Vec<String> = plan.iter().map(|e| e.name.clone()).collect();
    let mut printer = Printer {
        names: &names,
        repeat,
        backend,
        results: &common.results,
        summary: Vec::new(),
        rounds: Vec::new(),
        code: 0,
    };
    let result = run_plan(plan, opts, &mut interrupt, |event| match event {
        Event::Starting { index } => {
            eprintln!(
                "chaos: running {} ({}/{total}): starting nodes",
                names[index],
                index + 1
            )
        }
        Event::NodesUp {
            index,
            nodes,
            setup,
        } => {
            let list: Vec<String> = nodes
                .iter()
                .map(|n| format!("{} :{}", n.name, n.port))
                .collect();
            eprintln!(
                "chaos: {}: nodes up in {:.1} s ({}); workload starts",
                names[index],
                setup.as_secs_f64(),
                list.join(", ")
            );
        }
        Event::Finished { index, result } => printer.finished(index, *result),
    })
    .await;
    match result {
        Err(e @ RunError::Interrupted { signal, .. }) => {
            eprintln!("chaos: {e}");
            return 128u8.saturating_add(u8::try_from(signal).unwrap_or(0));
        }
        Err(e) => {
            eprintln!("chaos: {e}");
            return 1;
        }
        Ok(()) => {}
    }
    if printer.summary.len() > 1 {
        println!("\nsummary:");
        for l in &printer.summary {
            println!("  {l}");
        }
    }
    printer.code
}

/// Prints each verdict as it arrives and, with `--repeat`, the aggregate after the last round.
struct Printer<'a> {
    names: &'a [String],
    repeat: usize,
    backend: BackendKind,
    results: &'a Path,
    summary: Vec<String>,
    /// This experiment's rounds so far.
    rounds: Vec<Repetition>,
    code: u8,
}

impl Printer<'_> {
    fn finished(&mut self, index: usize, result: Result<chaos::run::Outcome, RunError>) {
        let name = &self.names[index];
        match &result {
            Ok(outcome) => {
                let line = outcome.report.summary_line();
                println!("{line}\n  -> {}", outcome.dir.display());
                print_failed_checks(&outcome.report.verdict);
                if !outcome.report.verdict.pass {
                    self.code = self.code.max(1);
                }
                self.summary.push(line);
            }
            Err(e @ RunError::Environment(_)) => {
                eprintln!("chaos: {name}: {e}");
                self.code = 3;
            }
            Err(e) => {
                eprintln!("chaos: {name}: {e}");
                self.summary.push(format!("{name}: ERROR {e}"));
                self.code = self.code.max(1);
            }
        }
        if self.repeat < 2 {
            return;
        }
        let round = self.rounds.len() as u32 + 1;
        self.rounds.push(Repetition::new(round, &result));
        if self.rounds.len() == self.repeat {
            let aggregate = Aggregate::new(name, self.backend, std::mem::take(&mut self.rounds));
            let started = time::OffsetDateTime::now_utc();
            let dir = results_dir(self.results, &format!("{name}-x{}", self.repeat), started);
            let line = aggregate.summary_line();
            match aggregate.write(&dir) {
                Ok(()) => println!("{line}\n  -> {}", dir.display()),
                Err(e) => eprintln!("chaos: writing {}: {e}", dir.display()),
            }
            self.summary.push(line);
        }
    }
}
