//! DNS paths: an A query per attempt to one server over UDP (no cache, no retries), whose answer
//! must contain the expected address.

use std::net::IpAddr;

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RecordType;

use super::schedule::every_interval;
use super::sequence::Sequencer;
use super::{Timing, describe};

/// Follows a DNS path forever: `name` asked of `server` (`ip:port`), `expect` wanted in the answer.
pub(super) async fn follow(server: String, name: String, expect: String, timing: Timing, sink: Sequencer) {
    let resolver = crate::dns::resolver_to(&server, false, timing.timeout);
    every_interval(timing, sink, move || {
        let (resolver, name, expect) = (resolver.clone(), name.clone(), expect.clone());
        async move { query(&resolver?, &name, &expect).await }
    })
    .await
}

/// One A query; fails unless the answer holds `expect`.
async fn query(resolver: &TokioResolver, name: &str, expect: &str) -> Result<(), String> {
    let lookup = resolver.lookup(name, RecordType::A).await.map_err(|e| describe(&crate::dns::classify(&e)))?;
    let addresses: Vec<String> =
        lookup.answers().iter().filter(|r| r.record_type() == RecordType::A).map(|r| r.data.to_string()).collect();
    judge(&addresses, expect)
}

/// Whether an answer's addresses hold `expect` (compared as addresses when both parse).
fn judge(addresses: &[String], expect: &str) -> Result<(), String> {
    let same = |a: &String| match (a.parse::<IpAddr>(), expect.parse::<IpAddr>()) {
        (Ok(a), Ok(e)) => a == e,
        _ => a == expect,
    };
    if addresses.is_empty() {
        Err("no A record".into())
    } else if addresses.iter().any(same) {
        Ok(())
    } else {
        Err(format!("wrong address: {} (expected {expect})", addresses.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_must_hold_the_expected_address() {
        let answer = vec!["10.96.0.20".to_string(), "10.96.0.21".to_string()];
        assert_eq!(judge(&answer, "10.96.0.21"), Ok(()));
        assert_eq!(
            judge(&answer, "10.96.0.9"),
            Err("wrong address: 10.96.0.20, 10.96.0.21 (expected 10.96.0.9)".into())
        );
        assert_eq!(judge(&[], "10.96.0.9"), Err("no A record".into()));
    }
}
