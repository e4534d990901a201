//! The attempts of one order as they complete, bounded so that the result always fits back into the
//! order's ConfigMap.
//!
//! Probes push each attempt here the moment it ends, instead of returning them at the end: when the
//! order's deadline cuts the execution short, what was observed until then is still reported.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use netcheck_protocol::{Attempt, CONFIGMAP_HEADROOM_BYTES, CONFIGMAP_LIMIT_BYTES, MAX_DETAIL_CHARS, Outcome};

/// The attempts of one order so far, and the bytes they take in the result.
pub(super) struct Recorder {
    attempts: Mutex<(Vec<Attempt>, usize)>,
    budget_bytes: usize,
    full: AtomicBool,
}

impl Recorder {
    /// A recorder for an order whose own text takes `order_bytes` of the ConfigMap.
    pub(super) fn for_order(order_bytes: usize) -> Recorder {
        Recorder::with_budget(CONFIGMAP_LIMIT_BYTES.saturating_sub(order_bytes + CONFIGMAP_HEADROOM_BYTES))
    }

    fn with_budget(budget_bytes: usize) -> Recorder {
        Recorder { attempts: Mutex::new((Vec::new(), 0)), budget_bytes, full: AtomicBool::new(false) }
    }

    /// Records `attempt` (its error text cut to [`MAX_DETAIL_CHARS`]). Returns false, and records
    /// nothing, once the result would outgrow its budget: the probe should then stop.
    pub(super) fn push(&self, mut attempt: Attempt) -> bool {
        shorten_detail(&mut attempt.outcome);
        // JSON text of the attempt and its separating comma.
        let size = serde_json::to_string(&attempt).map_or(usize::MAX, |t| t.len() + 1);
        let Ok(mut guard) = self.attempts.lock() else { return false };
        let (attempts, bytes) = &mut *guard;
        if self.full.load(Ordering::SeqCst) || bytes.saturating_add(size) > self.budget_bytes {
            self.full.store(true, Ordering::SeqCst);
            return false;
        }
        *bytes += size;
        attempts.push(attempt);
        true
    }

    /// Whether an attempt was turned away for lack of room.
    pub(super) fn is_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// The attempts recorded so far, in completion order, and the bytes they take.
    pub(super) fn take(&self) -> (Vec<Attempt>, usize) {
        self.attempts.lock().map(|mut g| std::mem::take(&mut *g)).unwrap_or_default()
    }
}

fn shorten_detail(outcome: &mut Outcome) {
    if let Outcome::Unexpected { detail } | Outcome::Unresolved { detail } | Outcome::Error { detail } = outcome
        && detail.chars().count() > MAX_DETAIL_CHARS
    {
        *detail = detail.chars().take(MAX_DETAIL_CHARS - 1).chain(['…']).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netcheck_protocol::{Identity, OrderResult};

    fn attempt(outcome: Outcome) -> Attempt {
        Attempt { target: "10.96.0.20:80".into(), start_ms: 1, elapsed_us: 2, retries: 0, outcome }
    }

    #[test]
    fn attempts_beyond_the_budget_are_refused_and_the_recorder_says_it_is_full() {
        let one = serde_json::to_string(&attempt(Outcome::Timeout)).unwrap().len() + 1;
        let r = Recorder::with_budget(one * 3);
        assert!((0..3).all(|_| r.push(attempt(Outcome::Timeout))));
        assert!(!r.is_full());
        assert!(!r.push(attempt(Outcome::Timeout)), "the fourth does not fit");
        assert!(r.is_full());
        let (attempts, bytes) = r.take();
        assert_eq!((attempts.len(), bytes), (3, one * 3));
    }

    #[test]
    fn long_error_texts_are_cut() {
        let r = Recorder::with_budget(10_000);
        r.push(attempt(Outcome::Error { detail: "x".repeat(5000) }));
        let (attempts, _) = r.take();
        let Outcome::Error { detail } = &attempts[0].outcome else { panic!("not an error") };
        assert_eq!(detail.chars().count(), MAX_DETAIL_CHARS);
        assert!(detail.ends_with('…'));
    }

    #[test]
    fn whatever_the_probe_records_the_result_fits_in_its_config_map() {
        // DNS answers are the largest attempts: a headless Service over many pods.
        let records = (0..200).map(|i| format!("fd00:1234:5678:9abc:def0:1234:5678:{i:04x}")).collect();
        let big = attempt(Outcome::Records { records, ttl_s: Some(30) });
        let order_bytes = 40_000;
        let r = Recorder::for_order(order_bytes);
        let mut pushed = 0;
        while r.push(big.clone()) {
            pushed += 1;
        }
        assert!(pushed > 10, "{pushed}");
        let identity =
            Identity { pod: "p".repeat(63), node: "n".repeat(63), pod_ip: "fd00::1".into(), client: String::new() };
        let mut result = OrderResult::new(identity);
        result.attempts = r.take().0;
        result.partial = Some("the result reached the size a ConfigMap can hold after 9999 attempts".into());
        let size = serde_json::to_string(&result).unwrap().len() + order_bytes;
        assert!(size < CONFIGMAP_LIMIT_BYTES, "{size} bytes do not fit in a ConfigMap");
    }
}
