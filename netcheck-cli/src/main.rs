//! `netcheck`: a thin shell over the `netcheck` library. Parses arguments, draws progress, renders the
//! report, and turns the outcome into an exit code (0 passed, 1 a check failed, 2 could not run).

mod metrics;
mod progress;
mod version;
mod watch;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use netcheck::orchestrator::{self, RunOptions};
use netcheck::report::{baseline, human, json, junit};
use netcheck::runner::{self, ConnectOptions, SessionOptions};
use netcheck::{Error, catalog, diagnose, scenario};

#[derive(Parser)]
#[command(
    name = "netcheck",
    version,
    about = "Proves a Kubernetes cluster's Service networking works, and says what is broken when it does not."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ClusterArgs {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, as kubectl).
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long, global = true)]
    context: Option<String>,
}

impl ClusterArgs {
    fn options(&self) -> ConnectOptions {
        ConnectOptions { kubeconfig: self.kubeconfig.clone(), context: self.context.clone() }
    }
}

#[derive(Copy, Clone, ValueEnum, PartialEq, Eq)]
enum Output {
    Human,
    Json,
}

#[derive(Copy, Clone, ValueEnum)]
enum FromRunnerArg {
    Auto,
    Always,
    Never,
}

impl From<FromRunnerArg> for runner::FromRunner {
    fn from(a: FromRunnerArg) -> Self {
        match a {
            FromRunnerArg::Auto => runner::FromRunner::Auto,
            FromRunnerArg::Always => runner::FromRunner::Always,
            FromRunnerArg::Never => runner::FromRunner::Never,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Deploy agents into a temporary namespace, run checks, report, clean up.
    Run(Box<RunArgs>),
    /// Walk an existing Service from selector to DNS and name the first broken link.
    Diagnose(Box<DiagnoseArgs>),
    /// Measure Service networking while COMMAND (an upgrade) runs, and judge the disruption
    /// against a budget: `netcheck watch -- ./upgrade.sh`; or `watch start` … `watch stop`.
    Watch(Box<watch::WatchCommand>),
    /// List the checks and the built-in scenarios.
    List,
    /// Print the RBAC netcheck needs (a ClusterRole and a ServiceAccount bound to it), for
    /// `netcheck rbac | kubectl apply -f -`.
    Rbac,
    /// Print this client's version and, with a cluster, the server's and whether every node holds
    /// the agent image.
    Version {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Only this client's version: no cluster is contacted.
        #[arg(long)]
        client: bool,
        /// The agent image to look for on the nodes.
        #[arg(long, default_value = runner::DEFAULT_IMAGE)]
        image: String,
    },
    /// Delete netcheck namespaces left behind: expired ones, or all with --all.
    Gc {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Delete every netcheck namespace, expired or not.
        #[arg(long)]
        all: bool,
        /// Only print what would be deleted, and why.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The arguments of `netcheck run`.
#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Built-in scenario name or a scenario file.
    #[arg(long, default_value = "quick")]
    scenario: String,
    /// Run only these checks (repeatable); replaces the scenario's selection.
    #[arg(long = "check", value_name = "ID")]
    checks: Vec<String>,
    /// Leave these checks out (repeatable).
    #[arg(long = "skip", value_name = "ID")]
    skips: Vec<String>,
    /// Agent image.
    #[arg(long, default_value = runner::DEFAULT_IMAGE)]
    image: String,
    /// The platforms the agent image provides, e.g. linux/amd64,linux/arm64 (default: what
    /// image/Dockerfile builds); a node of another OS or architecture is a skip naming it.
    #[arg(long, value_name = "OS/ARCH,...", value_parser = parse_image_platforms)]
    image_platforms: Option<ImagePlatforms>,
    /// Limit for the agents to become Ready, e.g. 60s or 2m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    report: ReportArgs,
    /// Also run client agents on tainted nodes (they tolerate every taint).
    #[arg(long)]
    tolerate_taints: bool,
    /// Also probe node ports from this machine: auto (if a quick connect test reaches a node),
    /// always, or never.
    #[arg(long, value_enum, default_value = "auto")]
    from_runner: FromRunnerArg,
    /// The cluster's DNS domain, under which Service names are expected.
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN", value_parser = parse_dns_name)]
    cluster_domain: String,
    /// Opt in to dns/external: this name must resolve from every node (needs the cluster's DNS
    /// to reach an upstream; netcheck never picks a name on its own).
    #[arg(long, value_name = "NAME", value_parser = parse_external_name)]
    external_name: Option<String>,
    /// Compare with an earlier JSON report (e.g. from before an upgrade): a result that passed and
    /// no longer does, or a time worse by more than --tolerance, is a regression and exits 1.
    #[arg(long, value_name = "REPORT.json")]
    baseline: Option<PathBuf>,
    /// How much worse (in percent of the baseline) a measured time may get, above a 10 ms floor.
    #[arg(long, value_name = "PERCENT", default_value_t = 50.0)]
    tolerance: f64,
}

/// Where and how a report is written (`run`, `watch`, `watch stop`).
#[derive(Args)]
struct ReportArgs {
    /// Report format on stdout.
    #[arg(short = 'o', long, value_enum, default_value = "human")]
    output: Output,
    /// Also write a JUnit XML report (one test case per check × subject) to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Keep the namespace netcheck created, for inspection.
    #[arg(long)]
    keep: bool,
}

/// The arguments of `netcheck diagnose`.
#[derive(Args)]
struct DiagnoseArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// The Service: service/NAME, svc/NAME or NAME.
    #[arg(value_name = "service/NAME")]
    target: String,
    /// The Service's namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Only this Service port, by number or name (default: every port).
    #[arg(long, value_name = "PORT")]
    port: Option<String>,
    /// Only the read-only steps: nothing is created (for users who may not create namespaces).
    #[arg(long)]
    read_only: bool,
    /// Checklist format on stdout.
    #[arg(short = 'o', long, value_enum, default_value = "human")]
    output: Output,
    /// Agent image for the active steps.
    #[arg(long, default_value = runner::DEFAULT_IMAGE)]
    image: String,
    /// The platforms the agent image provides, e.g. linux/amd64,linux/arm64 (default: what
    /// image/Dockerfile builds); a node of another OS or architecture is a skip naming it.
    #[arg(long, value_name = "OS/ARCH,...", value_parser = parse_image_platforms)]
    image_platforms: Option<ImagePlatforms>,
    /// Limit for the client agents to become Ready, e.g. 60s or 2m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    /// Also run client agents on tainted nodes.
    #[arg(long)]
    tolerate_taints: bool,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN", value_parser = parse_dns_name)]
    cluster_domain: String,
}

/// `service/NAME`, `svc/NAME`, `services/NAME` or a bare `NAME`.
fn service_name(target: &str) -> Result<String, String> {
    let name = match target.split_once('/') {
        None => target,
        Some(("service" | "services" | "svc", name)) => name,
        Some((kind, _)) => return Err(format!("'{target}': diagnose takes a Service (service/NAME), not a {kind}")),
    };
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(name.to_string())
    } else {
        Err(format!("'{name}' is not a valid Service name (a DNS label: a-z, 0-9, -)"))
    }
}

/// The platforms of `--image-platforms`, parsed.
#[derive(Clone, Debug)]
struct ImagePlatforms(Vec<runner::Platform>);

impl ImagePlatforms {
    /// The given platforms, else those image/Dockerfile builds.
    fn or_default(given: Option<ImagePlatforms>) -> Vec<runner::Platform> {
        given.map_or_else(runner::Platform::dockerfile_defaults, |p| p.0)
    }
}

/// `--image-platforms linux/amd64,linux/arm64`.
fn parse_image_platforms(text: &str) -> Result<ImagePlatforms, String> {
    netcheck::runner::inventory::parse_platforms(text).map(ImagePlatforms)
}

/// The longest duration a flag accepts: nothing netcheck waits for takes a day.
const MAX_FLAG_DURATION: Duration = Duration::from_secs(24 * 3600);

/// A duration flag: `30s`, `2m`, `500ms`, `1m30s` (jiff's friendly format, or ISO 8601 `PT2M`), or
/// a bare number of seconds; more than zero and at most a day.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let not_a_duration = || format!("'{text}' is not a duration like 30s, 2m or 500ms");
    let parsed = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let d: jiff::SignedDuration = text.parse().map_err(|_| not_a_duration())?;
            Duration::try_from(d).map_err(|_| format!("'{text}' is negative: give a duration like 30s"))?
        }
    };
    if parsed.is_zero() {
        return Err(format!("'{text}' is zero: give a duration like 30s"));
    }
    if parsed > MAX_FLAG_DURATION {
        return Err(format!("'{text}' is longer than a day (24h)"));
    }
    Ok(parsed)
}

/// A DNS name flag (`--cluster-domain`, `--external-name`): dot-separated labels of a-z, 0-9 and `-`
/// (case-insensitive), each 1 to 63 characters and not starting or ending with `-`, at most 253 in all;
/// one trailing dot allowed and dropped.
/// `--external-name`: a DNS name as given, lower-cased; a trailing dot is kept, since it makes the
/// name absolute and keeps the pod's search list out of the check.
fn parse_external_name(text: &str) -> Result<String, String> {
    parse_dns_name(text)?;
    Ok(text.to_ascii_lowercase())
}

fn parse_dns_name(text: &str) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(format!("'{text}' is not a DNS name (labels of a-z, 0-9 and -, separated by dots)"))
    }
}

/// How the user called us, for usage lines: `kubectl netcheck` when run as a kubectl plugin
/// (installed as `kubectl-netcheck` on the PATH), else `netcheck`.
fn invoked_as(argv0: &str) -> &'static str {
    let file = std::path::Path::new(argv0).file_name().and_then(|f| f.to_str()).unwrap_or("");
    if file.starts_with("kubectl-netcheck") { "kubectl netcheck" } else { "netcheck" }
}

fn parse_cli() -> Cli {
    let argv0 = std::env::args().next().unwrap_or_default();
    let matches = Cli::command().bin_name(invoked_as(&argv0)).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

fn main() -> ExitCode {
    let cli = parse_cli();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,kube_client::client::builder=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    runtime.block_on(dispatch(cli.command))
}

async fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Run(args) => {
            let RunArgs {
                cluster,
                scenario,
                checks,
                skips,
                image,
                image_platforms,
                timeout,
                report,
                tolerate_taints,
                from_runner,
                cluster_domain,
                external_name,
                baseline,
                tolerance,
            } = *args;
            // Read before anything is deployed: a bad baseline must not cost a run.
            let baseline = match baseline.map(|path| read_baseline(&path, tolerance)).transpose() {
                Ok(b) => b,
                Err(message) => return fail(&message),
            };
            let selection = select(&scenario, &checks, &skips);
            let scenario = match selection {
                Ok(s) => s,
                Err(e) => return fail_error(&e),
            };
            let session = SessionOptions {
                image,
                image_platforms: ImagePlatforms::or_default(image_platforms),
                ready_timeout: timeout,
                tolerate_taints,
                from_runner: from_runner.into(),
                cluster_domain,
                external_name,
                ..Default::default()
            };
            let options = RunOptions { connect: cluster.options(), scenario, session, keep: report.keep };
            run(options, report.output, report.junit, baseline).await
        }
        Command::Diagnose(args) => diagnose(*args).await,
        Command::Watch(args) => watch::watch(*args).await,
        Command::List => {
            print!("{}", list());
            ExitCode::SUCCESS
        }
        Command::Rbac => {
            print!("{}", netcheck::rbac::MANIFEST);
            ExitCode::SUCCESS
        }
        Command::Gc { cluster, all, dry_run } => gc(cluster, all, dry_run).await,
        Command::Version { cluster, client, image } => version::version(&cluster, &image, client).await,
    }
}

fn select(name: &str, checks: &[String], skips: &[String]) -> Result<scenario::Scenario, Error> {
    let mut scenario = if checks.is_empty() { scenario::load(name)? } else { scenario::from_check_ids(checks)? };
    scenario.without(skips)?;
    if scenario.checks.is_empty() {
        return Err(Error::Input("--skip left no check to run".into()));
    }
    Ok(scenario)
}

/// A baseline report and the tolerance to compare with.
type Baseline = (netcheck::Report, baseline::Tolerance);

fn read_baseline(path: &std::path::Path, tolerance: f64) -> Result<Baseline, String> {
    if !(tolerance.is_finite() && tolerance >= 0.0) {
        return Err(format!("--tolerance {tolerance} is not a percentage (0 or more)"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("cannot read the baseline {}: {e} (give a report written by `netcheck run -o json`)", path.display())
    })?;
    let report = json::parse(&text).map_err(|e| {
        format!("{} is not a netcheck JSON report: {e} (write one with `netcheck run -o json > FILE`)", path.display())
    })?;
    Ok((report, baseline::Tolerance { relative: tolerance / 100.0, ..Default::default() }))
}

async fn run(options: RunOptions, output: Output, junit_path: Option<PathBuf>, base: Option<Baseline>) -> ExitCode {
    let interactive = std::io::stderr().is_terminal();
    let progress = progress::Bar::new(interactive);
    let outcome = orchestrator::run(&options, &progress).await;
    progress.finish();
    let mut report = match outcome {
        Ok(r) => r,
        Err(e) => return fail_error(&e),
    };
    if let Some((earlier, tolerance)) = &base {
        report.regressions = baseline::compare(earlier, &report, *tolerance);
    }
    if let Some(path) = junit_path
        && let Err(e) = std::fs::write(&path, junit::render(&report))
    {
        return fail(&format!("cannot write the JUnit report to {}: {e}", path.display()));
    }
    match output {
        Output::Json => println!("{}", json::render(&report)),
        Output::Human => {
            let color = human::color_wanted(std::io::stdout().is_terminal());
            print!("{}", human::render(&report, color));
        }
    }
    ExitCode::from(report.exit_code() as u8)
}

async fn diagnose(args: DiagnoseArgs) -> ExitCode {
    let service = match service_name(&args.target) {
        Ok(name) => name,
        Err(message) => {
            return fail(&format!("invalid input: {message}\n  → e.g. netcheck diagnose service/web -n shop"));
        }
    };
    let interactive = std::io::stderr().is_terminal();
    let progress = progress::Bar::new(interactive);
    let cluster = match runner::connect(&args.cluster.options()).await {
        Ok(c) => c,
        Err(e) => {
            progress.finish();
            return fail_error(&e);
        }
    };
    let namespace = args.namespace.unwrap_or_else(|| cluster.client.default_namespace().to_string());
    let options = diagnose::DiagnoseOptions {
        namespace,
        service,
        port: args.port,
        read_only: args.read_only,
        session: SessionOptions {
            image: args.image,
            image_platforms: ImagePlatforms::or_default(args.image_platforms),
            ready_timeout: args.timeout,
            tolerate_taints: args.tolerate_taints,
            cluster_domain: args.cluster_domain,
            ..Default::default()
        },
    };
    let outcome = diagnose::diagnose(&cluster, &options, &progress).await;
    progress.finish();
    let checklist = match outcome {
        Ok(c) => c,
        Err(e @ Error::NoSuchPort { .. }) => {
            return fail(&format!("{e}\n  → name one of the Service's ports with --port, or leave it out"));
        }
        Err(e) if e.is_forbidden() => {
            return fail(&format!("{e}\n  → --read-only runs only the steps that create nothing"));
        }
        Err(e @ Error::Timeout { .. }) => {
            return fail(&format!("{e}\n  → raise --timeout, or --read-only to skip the probes that need agents"));
        }
        Err(e) => return fail_error(&e),
    };
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&checklist).unwrap_or_default()),
        Output::Human => {
            print!("{}", diagnose::render::human(&checklist, human::color_wanted(std::io::stdout().is_terminal())))
        }
    }
    ExitCode::from(checklist.exit_code() as u8)
}

fn list() -> String {
    let mut out = String::from("Checks:\n");
    let width = catalog::checks().map(|c| c.id.len()).max().unwrap_or(0);
    for check in catalog::checks() {
        out.push_str(&format!("  {:<width$} {}\n", check.id, check.title));
    }
    out.push_str("\nScenarios:\n");
    for name in scenario::builtin_names() {
        if let Some(s) = scenario::builtin(name) {
            let ids: Vec<&str> = s.checks.iter().map(|c| c.id).collect();
            out.push_str(&format!("  {:<12} {}\n  {:<12} checks: {}\n", name, s.description, "", ids.join(", ")));
        }
    }
    out
}

async fn gc(cluster: ClusterArgs, all: bool, dry_run: bool) -> ExitCode {
    let connected = match runner::connect(&cluster.options()).await {
        Ok(c) => c,
        Err(e) => return fail_error(&e),
    };
    match runner::namespace::collect_garbage(&connected.client, all, dry_run).await {
        Ok(decisions) => {
            if !decisions.iter().any(|d| d.deleted) {
                println!("no netcheck namespace to delete");
            }
            let verb = if dry_run { "would delete" } else { "deleted" };
            for d in decisions {
                let action = if d.deleted { verb } else { "kept" };
                println!("{action} namespace {}: {}", d.name, d.why);
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail_error(&e),
    }
}

/// One message saying what went wrong and what to do; exit code 2.
fn fail_error(error: &Error) -> ExitCode {
    let hint = match error {
        Error::Kubeconfig { .. } => "check --kubeconfig/--context or KUBECONFIG",
        Error::Unreachable { .. } => "check that the cluster is up and that this machine can reach its API server",
        Error::Deploy { .. } => {
            "fix the cause above (a permission the API refused: `netcheck rbac` lists what netcheck needs; a missing \
             image: load it into the nodes or pass --image)"
        }
        Error::Timeout { .. } => "inspect the namespace with --keep, or raise --timeout",
        Error::Scenario(_) | Error::Input(_) => "see `netcheck list` for checks and scenarios",
        Error::NoUsableNode { .. } => {
            "uncordon a Ready node, pass --tolerate-taints to run agents on tainted nodes, or --image-platforms when \
             the image was built for the nodes' architecture"
        }
        Error::ImageUnavailable { .. } => {
            "load the image into every node (kind: `kind load docker-image IMAGE`, or `kind load image-archive \
             FILE.tar`), or push it to a registry the cluster pulls from (AKS: the ACR attached to the cluster) and \
             pass --image REGISTRY/netcheck/agent:VERSION; README \"On kind\" and \"On AKS\" show the steps"
        }
        Error::NoSuchPort { .. } => "name one of the Service's ports with --port, or leave it out",
        e if e.is_forbidden() => "the API refused for lack of permission: grant the verb and resource named above",
        Error::Interrupted { signal } => {
            eprintln!(
                "netcheck: {error}\n  → the run stopped; its namespace is deleted unless --keep was given (`netcheck gc` \
                 collects leftovers)"
            );
            // As a shell reports a process ended by the signal: 130 for SIGINT, 143 SIGTERM, 129 SIGHUP.
            return ExitCode::from((128 + signal) as u8);
        }
        _ => "re-run with RUST_LOG=debug for details",
    };
    fail(&format!("{error}\n  → {hint}"))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("netcheck: {message}");
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_a_kubectl_plugin_the_usage_says_kubectl_netcheck() {
        assert_eq!(invoked_as("/usr/local/bin/kubectl-netcheck"), "kubectl netcheck");
        assert_eq!(invoked_as("kubectl-netcheck.exe"), "kubectl netcheck");
        assert_eq!(invoked_as("/home/me/.cargo/bin/netcheck"), "netcheck");
        assert_eq!(invoked_as(""), "netcheck");
    }

    #[test]
    fn image_platforms_parse_and_default_to_the_dockerfiles() {
        let given = parse_image_platforms("linux/arm64").unwrap();
        assert_eq!(ImagePlatforms::or_default(Some(given)).len(), 1);
        assert_eq!(ImagePlatforms::or_default(None), runner::Platform::dockerfile_defaults());
        assert!(parse_image_platforms("windows/amd64").unwrap_err().contains("Linux"));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45), "a bare number is seconds");
        assert!(parse_duration("soon").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn durations_that_are_zero_negative_huge_or_overflowing_are_refused() {
        assert!(parse_duration("0").unwrap_err().contains("zero"));
        assert!(parse_duration("0s").unwrap_err().contains("zero"));
        assert!(parse_duration("-5s").unwrap_err().contains("negative"));
        assert!(parse_duration("25h").unwrap_err().contains("longer than a day"));
        assert!(parse_duration("18446744073709551615m").is_err(), "no overflow panic");
        assert!(parse_duration("18446744073709551615").unwrap_err().contains("longer than a day"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn dns_name_flags_are_validated() {
        assert_eq!(parse_dns_name("cluster.local").unwrap(), "cluster.local");
        assert_eq!(parse_dns_name("Corp.Example.").unwrap(), "corp.example", "trailing dot and case");
        assert_eq!(parse_external_name("Example.COM.").unwrap(), "example.com.", "absolute stays absolute");
        assert!(parse_external_name("a..b").is_err());
        for bad in ["", ".", "a..b", "-a.b", "a b", "a_b.local", "x/y", &"a".repeat(64), &"a.".repeat(130)] {
            assert!(parse_dns_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn diagnose_takes_a_service_in_kubectl_forms() {
        assert_eq!(service_name("service/web").unwrap(), "web");
        assert_eq!(service_name("svc/web-2").unwrap(), "web-2");
        assert_eq!(service_name("web").unwrap(), "web");
        assert!(service_name("deployment/web").unwrap_err().contains("not a deployment"));
        assert!(service_name("service/Web_1").unwrap_err().contains("not a valid Service name"));
        assert!(service_name("service/").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
