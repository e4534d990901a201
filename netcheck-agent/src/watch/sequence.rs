//! Folds a path's attempts into the shared record in the order they started.
//!
//! Attempts run concurrently and may end in any order (a timeout ends long after the successes that
//! started after it), but [`PathRecord::observe`](netcheck_protocol::watch::PathRecord::observe)
//! needs them in start order to draw outage windows right. Each attempt takes a sequence number when
//! it starts; its result waits here until every earlier attempt has ended.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use netcheck_protocol::watch::{Cut, Observation, WatchRecord};

/// What one attempt found: the observation, and a cut when it broke a long-lived connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Done {
    /// The attempt as the record sees it.
    pub(super) observation: Observation,
    /// The long-lived connection it cut, if any.
    pub(super) cut: Option<Cut>,
}

/// A reorder buffer: hands results back in the order of their sequence numbers.
#[derive(Debug)]
pub(super) struct Reorder<T> {
    next_start: u64,
    next_out: u64,
    waiting: BTreeMap<u64, T>,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Reorder { next_start: 0, next_out: 0, waiting: BTreeMap::new() }
    }
}

impl<T> Reorder<T> {
    /// The sequence number of an attempt starting now.
    pub(super) fn start(&mut self) -> u64 {
        let seq = self.next_start;
        self.next_start += 1;
        seq
    }

    /// Takes the result of attempt `seq`; returns the results that may now be folded, in order
    /// (none while an earlier attempt is still running).
    pub(super) fn done(&mut self, seq: u64, item: T) -> Vec<T> {
        self.waiting.insert(seq, item);
        let mut ready = Vec::new();
        while let Some(item) = self.waiting.remove(&self.next_out) {
            ready.push(item);
            self.next_out += 1;
        }
        ready
    }

    /// Results waiting for an earlier attempt.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

/// One path's entry point into the shared record.
pub(super) struct Sequencer {
    id: String,
    record: Arc<Mutex<WatchRecord>>,
    order: Reorder<Done>,
}

impl Sequencer {
    /// A sequencer for path `id`; the path appears in the record at once, even before any attempt ends.
    pub(super) fn new(id: &str, record: Arc<Mutex<WatchRecord>>) -> Sequencer {
        if let Ok(mut r) = record.lock() {
            r.paths.entry(id.to_string()).or_default();
        }
        Sequencer { id: id.to_string(), record, order: Reorder::default() }
    }

    /// The sequence number of an attempt starting now.
    pub(super) fn start(&mut self) -> u64 {
        self.order.start()
    }

    /// Takes the result of attempt `seq` and folds in every result that is now in order.
    pub(super) fn done(&mut self, seq: u64, done: Done) {
        let ready = self.order.done(seq, done);
        if ready.is_empty() {
            return;
        }
        let Ok(mut record) = self.record.lock() else { return };
        let path = record.paths.entry(self.id.clone()).or_default();
        for done in ready {
            path.observe(&done.observation);
            if let Some(cut) = done.cut {
                path.cut(cut);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_out_in_start_order_whatever_order_they_end_in() {
        let mut r = Reorder::default();
        let seqs: Vec<u64> = (0..4).map(|_| r.start()).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
        assert!(r.done(1, "b").is_empty(), "0 is still running");
        assert!(r.done(3, "d").is_empty());
        assert_eq!(r.waiting(), 2);
        assert_eq!(r.done(0, "a"), ["a", "b"], "0 ends: 0 and 1 go out, 3 waits for 2");
        assert_eq!(r.done(2, "c"), ["c", "d"]);
        assert_eq!(r.waiting(), 0);
        let next = r.start();
        assert_eq!(r.done(next, "e"), ["e"], "in order: out at once");
    }

    fn observed(start_ms: u64, elapsed_ms: u64, error: Option<&str>) -> Done {
        Done { observation: Observation { start_ms, elapsed_ms, error: error.map(str::to_string) }, cut: None }
    }

    #[test]
    fn a_slow_failure_ending_after_later_successes_still_opens_its_window_where_it_started() {
        let record = Arc::new(Mutex::new(WatchRecord::new("node-a", "c-1", 0)));
        let mut s = Sequencer::new("clusterip", record.clone());
        assert!(record.lock().unwrap().paths.contains_key("clusterip"), "the path shows before any attempt");
        let (a, b, c) = (s.start(), s.start(), s.start());
        // The first attempt times out after 1000 ms; the next two answered in 2 ms each.
        s.done(b, observed(200, 2, None));
        s.done(c, observed(400, 2, None));
        assert_eq!(record.lock().unwrap().paths["clusterip"].requests, 0, "waiting for the first");
        s.done(a, observed(0, 1000, Some("timeout")));
        let r = record.lock().unwrap();
        let path = &r.paths["clusterip"];
        assert_eq!((path.requests, path.failures), (3, 1));
        assert!(path.open.is_none(), "the later successes close the window");
        // From the failure's start to the start of the next success, not to the end of its timeout.
        assert_eq!((path.windows[0].start_ms, path.windows[0].end_ms), (0, 200));
        assert_eq!(path.last_ok_ms, Some(400));
    }

    #[test]
    fn a_cut_is_recorded_with_its_failure() {
        let record = Arc::new(Mutex::new(WatchRecord::new("node-a", "c-1", 0)));
        let mut s = Sequencer::new("long", record.clone());
        let seq = s.start();
        let mut done = observed(10, 5, Some("reset"));
        done.cut = Some(Cut { at_ms: 10, backend: "s-1".into(), detail: "reset".into() });
        s.done(seq, done);
        let r = record.lock().unwrap();
        assert_eq!(r.paths["long"].cuts.len(), 1);
        assert_eq!(r.paths["long"].failures, 1);
    }
}
