//! `netcheck watch`: the disruption a command (an upgrade) causes, measured while it runs, and the
//! two-step form (`watch start`, `watch stop`) for pipelines where the upgrade is another job.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use netcheck::report::{human, json, junit};
use netcheck::runner::{self, Progress};
use netcheck::watch::{Budget, Watch, WatchOptions};
use netcheck::{Error, Report};

use crate::progress::Bar;
use crate::{
    ClusterArgs, ImagePlatforms, Output, ReportArgs, fail, fail_error, parse_dns_name, parse_duration,
    parse_image_platforms,
};

/// `netcheck watch`.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct WatchCommand {
    #[command(subcommand)]
    action: Option<WatchAction>,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    foreground: Foreground,
}

#[derive(Subcommand)]
enum WatchAction {
    /// Deploy the watch agents and leave them recording (until --ttl); prints the namespace.
    Start(Box<StartArgs>),
    /// Collect a running watch's records, judge them, report, and remove the agents.
    Stop(Box<StopArgs>),
}

/// `netcheck watch [OPTIONS] -- COMMAND [ARGS…]`.
#[derive(Args)]
struct Foreground {
    #[command(flatten)]
    deploy: DeployArgs,
    #[command(flatten)]
    budget: BudgetArgs,
    #[command(flatten)]
    report: ReportArgs,
    /// After COMMAND: limit for every node to be Ready and every path to answer again.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    settle_limit: Duration,
    /// Serve the watch's metrics (Prometheus/OpenMetrics text at /metrics) on this address while it
    /// runs, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
    /// The command to watch (its output goes to stderr, so stdout carries only the report).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

#[derive(Args)]
struct StartArgs {
    #[command(flatten)]
    deploy: DeployArgs,
    /// How long the agents may record before `netcheck gc` removes them.
    #[arg(long, default_value = "6h", value_parser = parse_duration)]
    ttl: Duration,
}

#[derive(Args)]
struct StopArgs {
    /// The watch's namespace (default: the only running watch).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    #[command(flatten)]
    budget: BudgetArgs,
    #[command(flatten)]
    report: ReportArgs,
}

/// How the agents are deployed and paced.
#[derive(Args)]
struct DeployArgs {
    /// Agent image.
    #[arg(long, default_value = runner::DEFAULT_IMAGE)]
    image: String,
    /// The platforms the agent image provides, e.g. linux/amd64,linux/arm64 (default: what
    /// image/Dockerfile builds); a node of another OS or architecture is a skip naming it.
    #[arg(long, value_name = "OS/ARCH,...", value_parser = parse_image_platforms)]
    image_platforms: Option<ImagePlatforms>,
    /// One attempt per path per node this often.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    interval: Duration,
    /// Per-attempt timeout.
    #[arg(long = "attempt-timeout", default_value = "1s", value_parser = parse_duration)]
    attempt_timeout: Duration,
    /// How often the agents write their records (the most a lost agent or runner costs).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    flush: Duration,
    /// Limit for traffic to flow on every path before COMMAND starts.
    #[arg(long, default_value = "2m", value_parser = parse_duration)]
    timeout: Duration,
    /// Also run client agents on tainted nodes.
    #[arg(long)]
    tolerate_taints: bool,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN", value_parser = parse_dns_name)]
    cluster_domain: String,
}

/// What the watch may cost, per node × path.
#[derive(Args)]
struct BudgetArgs {
    /// The longest outage allowed on any node × path.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    max_outage: Duration,
    /// The longest span no agent observed on a node (a restarted agent) that still passes.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    max_unobserved: Duration,
    /// The largest fraction of failed attempts allowed per node × path (0–1).
    #[arg(long, default_value_t = 0.01, value_parser = parse_fraction)]
    max_failed: f64,
    /// Long-lived connections may be cut (by default a cut fails the watch).
    #[arg(long)]
    allow_cuts: bool,
}

impl BudgetArgs {
    fn budget(&self) -> Budget {
        Budget {
            max_outage_ms: self.max_outage.as_millis() as u64,
            max_unobserved_ms: self.max_unobserved.as_millis() as u64,
            max_failed_fraction: self.max_failed,
            allow_cuts: self.allow_cuts,
        }
    }
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
        _ => Err(format!("'{text}' is not a fraction from 0 to 1 (e.g. 0.01 for 1 %)")),
    }
}

fn options(deploy: &DeployArgs, settle_limit: Duration, budget: Budget) -> WatchOptions {
    WatchOptions {
        image: deploy.image.clone(),
        image_platforms: ImagePlatforms::or_default(deploy.image_platforms.clone()),
        tolerate_taints: deploy.tolerate_taints,
        interval: deploy.interval,
        timeout: deploy.attempt_timeout,
        flush: deploy.flush,
        ready_timeout: deploy.timeout,
        settle_limit,
        cluster_domain: deploy.cluster_domain.clone(),
        budget,
        ..WatchOptions::default()
    }
}

/// Runs `netcheck watch`.
pub async fn watch(command: WatchCommand) -> ExitCode {
    match command.action {
        Some(WatchAction::Start(args)) => start(*args, &command.cluster).await,
        Some(WatchAction::Stop(args)) => stop(*args, &command.cluster).await,
        None => foreground(command.foreground, &command.cluster).await,
    }
}

async fn start(args: StartArgs, cluster: &ClusterArgs) -> ExitCode {
    let progress = Bar::new(std::io::stderr().is_terminal());
    let outcome = async {
        let cluster = runner::connect(&cluster.options()).await?;
        let mut options = options(&args.deploy, Duration::ZERO, Budget::default());
        options.ttl = args.ttl;
        until_signal(Watch::start(&cluster, &options, &progress)).await
    }
    .await;
    progress.finish();
    match outcome {
        Ok(watch) => {
            let ns = watch.detach();
            eprintln!("netcheck: the watch records in namespace {ns}; end it with `netcheck watch stop -n {ns}`");
            println!("{ns}");
            ExitCode::SUCCESS
        }
        Err(e) => fail_error(&e),
    }
}

async fn stop(args: StopArgs, cluster: &ClusterArgs) -> ExitCode {
    let progress = Bar::new(std::io::stderr().is_terminal());
    let outcome = async {
        let cluster = runner::connect(&cluster.options()).await?;
        let watch = Watch::attach(&cluster, args.namespace.as_deref()).await?;
        watch.stop(&args.budget.budget(), args.report.keep, &progress).await
    }
    .await;
    progress.finish();
    match outcome {
        Ok(report) => render(&report, &args.report, None),
        Err(e) => fail_error(&e),
    }
}

async fn foreground(args: Foreground, cluster: &ClusterArgs) -> ExitCode {
    let progress = Bar::new(std::io::stderr().is_terminal());
    let budget = args.budget.budget();
    let options = options(&args.deploy, args.settle_limit, budget);
    let listener = match args.metrics_addr {
        None => None,
        Some(addr) => match crate::metrics::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                return fail(&format!(
                    "cannot serve metrics on {addr}: {e}\n  → pick a free address for --metrics-addr"
                ));
            }
        },
    };
    let started = async {
        let cluster = runner::connect(&cluster.options()).await?;
        until_signal(Watch::start(&cluster, &options, &progress)).await
    }
    .await;
    let watch = match started {
        Ok(w) => w,
        Err(e) => {
            progress.finish();
            return fail_error(&e);
        }
    };
    let latest = crate::metrics::Latest::default();
    if let Some(listener) = listener {
        crate::metrics::serve(listener, latest.clone());
    }
    progress.phase("watch");
    progress.note(&format!("running {}", args.command.join(" ")));
    let (command_outcome, interrupted) = run_command(&args.command, &watch, &progress, &latest).await;
    if interrupted.is_none() {
        progress.phase("settle");
        match watch.wait_settled(options.settle_limit, &progress).await {
            Ok(true) => {}
            Ok(false) => {
                progress.note("the cluster did not settle within --settle-limit; open outages are judged as they are")
            }
            Err(e) => progress.note(&format!("could not follow the settling: {e}")),
        }
    }
    let outcome = watch.stop(&budget, args.report.keep, &progress).await;
    progress.finish();
    let report = match outcome {
        Ok(r) => r,
        Err(e) => return fail_error(&e),
    };
    if let Some(signal) = interrupted {
        render(&report, &args.report, None);
        eprintln!("netcheck: interrupted; the report above is partial and the watch's namespace is deleted");
        return ExitCode::from((128 + signal) as u8);
    }
    render(&report, &args.report, command_outcome.err().as_deref())
}

/// Runs COMMAND to its end while showing the outages in progress; returns how it ended and the
/// signal that interrupted the watch, if one did (the command is then terminated).
async fn run_command(
    command: &[String],
    watch: &Watch,
    progress: &Bar,
    metrics: &crate::metrics::Latest,
) -> (Result<(), String>, Option<i32>) {
    use tokio::signal::unix::{SignalKind, signal};
    let shown = command.join(" ");
    let mut child = match tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::io::stderr())
        .stderr(std::io::stderr())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return (Err(format!("cannot start `{shown}`: {e}")), None),
    };
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return (Err("cannot handle signals".into()), None);
    };
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut last = String::new();
    loop {
        tokio::select! {
            status = child.wait() => {
                let outcome = match status {
                    Ok(s) if s.success() => Ok(()),
                    Ok(s) => Err(format!("`{shown}` failed ({s})")),
                    Err(e) => Err(format!("`{shown}` could not be awaited: {e}")),
                };
                return (outcome, None);
            }
            _ = int.recv() => { child.kill().await.ok(); return (Err("interrupted".into()), Some(2)); }
            _ = term.recv() => { child.kill().await.ok(); return (Err("interrupted".into()), Some(15)); }
            _ = tick.tick() => show_outages(watch, progress, &mut last, metrics).await,
        }
    }
}

/// One progress line when what is failing changes (which node × path is failing now), and the
/// metrics of this snapshot.
async fn show_outages(watch: &Watch, progress: &Bar, last: &mut String, metrics: &crate::metrics::Latest) {
    let Ok(records) = watch.snapshot().await else { return };
    if let Ok(mut text) = metrics.lock() {
        *text = netcheck::watch::metrics::render(&records, netcheck::watch::now_ms());
    }
    let failing: Vec<String> = records
        .values()
        .flat_map(|r| r.paths.iter().filter(|(_, p)| p.open.is_some()).map(move |(id, _)| format!("{} {id}", r.node)))
        .collect();
    let now = if failing.is_empty() {
        "every path answering".to_string()
    } else {
        format!("failing now: {}", failing.join(", "))
    };
    if now != *last {
        progress.note(&now);
        *last = now;
    }
}

/// Resolves `work` unless SIGINT or SIGTERM comes first (dropping `work` drops its namespace guard).
async fn until_signal<T>(work: impl std::future::Future<Output = netcheck::Result<T>>) -> netcheck::Result<T> {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return work.await;
    };
    tokio::select! {
        r = work => r,
        _ = int.recv() => Err(Error::Interrupted { signal: 2 }),
        _ = term.recv() => Err(Error::Interrupted { signal: 15 }),
    }
}

/// Prints the report (and the JUnit file); exit 1 when the command failed, else the report's code.
fn render(report: &Report, args: &ReportArgs, command_failed: Option<&str>) -> ExitCode {
    if let Some(path) = &args.junit
        && let Err(e) = std::fs::write(path, junit::render(report))
    {
        return fail(&format!("cannot write the JUnit report to {}: {e}", path.display()));
    }
    match args.output {
        Output::Json => println!("{}", json::render(report)),
        Output::Human => print!("{}", human::render(report, human::color_wanted(std::io::stdout().is_terminal()))),
    }
    if let Some(why) = command_failed {
        eprintln!("netcheck: the watched command failed: {why}");
        return ExitCode::from(1);
    }
    ExitCode::from(report.exit_code() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_between_zero_and_one() {
        assert_eq!(parse_fraction("0.05").unwrap(), 0.05);
        assert_eq!(parse_fraction("0").unwrap(), 0.0);
        for bad in ["1.5", "-0.1", "five", "NaN", ""] {
            assert!(parse_fraction(bad).is_err(), "{bad}");
        }
    }
}
