//! The client role for DNS orders: sends each query with hickory-resolver, either to a named server
//! or through the pod's own resolv.conf, with caching and resolver retries off so that every attempt
//! is one observation.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::{Resolver, TokioResolver};

use super::record::Recorder;
use netcheck_protocol::{Attempt, DnsProbe, DnsQuery, Outcome, PresenceWatch};

/// How often a query is repeated while waiting for a name to appear.
const APPEARANCE_INTERVAL: Duration = Duration::from_millis(20);

/// Runs every query of the order; queries run concurrently, the sends of one query in sequence.
pub(super) async fn run(probe: &DnsProbe, record: &Recorder) -> Result<(), String> {
    let origin = Instant::now();
    let timeout = Duration::from_millis(probe.timeout_ms);
    let mut prepared = Vec::new();
    for query in &probe.queries {
        let rtype = RecordType::from_str(&query.record_type)
            .map_err(|_| format!("unknown record type {:?}", query.record_type))?;
        prepared.push((query, rtype, resolver_for(query, timeout)?));
    }
    let per_query = prepared.iter().map(|(query, rtype, resolver)| async move {
        match probe.until_answered_ms {
            None => {
                let interval = Duration::from_millis(probe.interval_ms);
                let mut in_a_row = 0;
                for i in 0..probe.attempts.max(1) {
                    if !interval.is_zero() {
                        tokio::time::sleep_until((origin + interval * i).into()).await;
                    }
                    let attempt = query_once(resolver, query, *rtype, origin).await;
                    in_a_row = presence_run(probe.until_presence.as_ref(), &attempt.outcome, in_a_row);
                    let room = record.push(attempt);
                    if !room || probe.until_presence.as_ref().is_some_and(|w| in_a_row >= w.sustained.max(1)) {
                        break;
                    }
                }
            }
            Some(limit) => {
                let mut silence = ServerSilence::default();
                loop {
                    let attempt = query_once(resolver, query, *rtype, origin).await;
                    let done = attempt.outcome.records().is_some()
                        || origin.elapsed() >= Duration::from_millis(limit)
                        || silence.gives_up_after(&attempt.outcome);
                    if !record.push(attempt) || done {
                        break;
                    }
                    tokio::time::sleep(APPEARANCE_INTERVAL).await;
                }
            }
        }
    });
    futures::future::join_all(per_query).await;
    Ok(())
}

/// How many tries in a row a server that has never answered (timeouts, refusals) gets while a name
/// is awaited: a blocked path to the DNS server is then reported in a few tries, not at the limit.
const SILENT_SERVER_TRIES: u32 = 3;

/// Whether the server has answered at all while a name is awaited, and its silent tries so far.
#[derive(Default)]
struct ServerSilence {
    answered: bool,
    silent_in_a_row: u32,
}

impl ServerSilence {
    /// Records `outcome`; true once the server has been silent [`SILENT_SERVER_TRIES`] times in a row
    /// without ever answering. Any answer (even NXDOMAIN: the name is not there yet) proves it listens.
    fn gives_up_after(&mut self, outcome: &Outcome) -> bool {
        if matches!(outcome, Outcome::Timeout | Outcome::Refused) {
            self.silent_in_a_row += 1;
        } else {
            self.answered = true;
            self.silent_in_a_row = 0;
        }
        !self.answered && self.silent_in_a_row >= SILENT_SERVER_TRIES
    }
}

/// The length of the run of answers showing the watched record as wanted, after `outcome`: an answer
/// extends or resets it; a failed query leaves it as it was (it proves nothing either way).
fn presence_run(watch: Option<&PresenceWatch>, outcome: &Outcome, run: u32) -> u32 {
    let Some(watch) = watch else { return 0 };
    let present = match outcome {
        Outcome::Records { records, .. } => records.contains(&watch.record),
        Outcome::NoRecords | Outcome::NxDomain => false,
        _ => return run,
    };
    if present == watch.present { run + 1 } else { 0 }
}

/// A resolver for one query: the named server over the named transport, or the pod's resolv.conf.
fn resolver_for(query: &DnsQuery, timeout: Duration) -> Result<TokioResolver, String> {
    let mut builder = match &query.server {
        None => TokioResolver::builder_tokio().map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?,
        Some(server) => return resolver_to(server, query.tcp, timeout),
    };
    quiet(builder.options_mut(), timeout);
    builder.build().map_err(|e| format!("cannot build a resolver: {e}"))
}

/// A resolver that sends every query once to `server` (`ip:port`), over TCP or UDP, with no cache.
/// Also used by the watch role's DNS paths.
pub(super) fn resolver_to(server: &str, tcp: bool, timeout: Duration) -> Result<TokioResolver, String> {
    let addr: SocketAddr = server.parse().map_err(|_| format!("DNS server {server:?} is not ip:port"))?;
    let mut connection = if tcp { ConnectionConfig::tcp() } else { ConnectionConfig::udp() };
    connection.port = addr.port();
    let ns = NameServerConfig::new(addr.ip(), true, vec![connection]);
    let mut builder = Resolver::builder_with_config(
        ResolverConfig::from_parts(None, vec![], vec![ns]),
        TokioRuntimeProvider::default(),
    );
    quiet(builder.options_mut(), timeout);
    builder.build().map_err(|e| format!("cannot build a resolver: {e}"))
}

/// One send per attempt: no cache, no retries, no hosts file.
fn quiet(options: &mut ResolverOpts, timeout: Duration) {
    options.cache_size = 0;
    options.attempts = 0;
    options.timeout = timeout;
    options.use_hosts_file = ResolveHosts::Never;
    options.num_concurrent_reqs = 1;
    options.try_tcp_on_error = false;
}

async fn query_once(resolver: &TokioResolver, query: &DnsQuery, rtype: RecordType, origin: Instant) -> Attempt {
    let start = Instant::now();
    let outcome = match resolver.lookup(query.name.as_str(), rtype).await {
        Ok(lookup) => {
            let answers: Vec<_> = lookup.answers().iter().filter(|r| r.record_type() == rtype).collect();
            let ttl_s = answers.iter().map(|r| r.ttl).min();
            let mut records: Vec<String> = answers.iter().map(|r| r.data.to_string()).collect();
            records.sort();
            if records.is_empty() { Outcome::NoRecords } else { Outcome::Records { records, ttl_s } }
        }
        Err(e) => classify(&e),
    };
    Attempt {
        target: query.key(),
        start_ms: start.duration_since(origin).as_millis() as u64,
        elapsed_us: start.elapsed().as_micros() as u64,
        retries: 0,
        outcome,
    }
}

pub(super) fn classify(e: &NetError) -> Outcome {
    if e.is_nx_domain() {
        Outcome::NxDomain
    } else if e.is_no_records_found() {
        Outcome::NoRecords
    } else if matches!(e, NetError::Timeout) {
        Outcome::Timeout
    } else if e.is_connection_closed() || matches!(e, NetError::NoConnections) {
        // hickory reports a server whose every connection failed at once (ICMP port unreachable,
        // TCP reset) as "no connections available": nothing listens there.
        Outcome::Refused
    } else {
        Outcome::Error { detail: e.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_awaited_name_is_given_up_only_when_the_server_never_answered() {
        let mut s = ServerSilence::default();
        assert!(!s.gives_up_after(&Outcome::Timeout));
        assert!(!s.gives_up_after(&Outcome::Refused));
        assert!(s.gives_up_after(&Outcome::Timeout), "three silent tries");
        let mut t = ServerSilence::default();
        assert!(!t.gives_up_after(&Outcome::NxDomain), "not there yet, but the server listens");
        assert!((0..10).all(|_| !t.gives_up_after(&Outcome::Timeout)), "a server that answered is waited for");
    }

    #[test]
    fn a_presence_run_grows_with_answers_as_wanted_and_ignores_failed_queries() {
        let watch = PresenceWatch { record: "10.244.1.5".into(), present: false, sustained: 3 };
        let with = Outcome::Records { records: vec!["10.244.1.5".into(), "10.244.2.7".into()], ttl_s: Some(30) };
        let without = Outcome::Records { records: vec!["10.244.2.7".into()], ttl_s: Some(12) };
        assert_eq!(presence_run(Some(&watch), &without, 0), 1);
        assert_eq!(presence_run(Some(&watch), &Outcome::NxDomain, 1), 2, "no such name: the record is absent");
        assert_eq!(presence_run(Some(&watch), &Outcome::Timeout, 2), 2, "a timeout proves nothing");
        assert_eq!(presence_run(Some(&watch), &with, 2), 0, "a stale answer starts the run again");
        assert_eq!(presence_run(None, &without, 5), 0, "no watch, no run");
        let wanted = PresenceWatch { present: true, ..watch };
        assert_eq!(presence_run(Some(&wanted), &with, 0), 1);
    }
}
