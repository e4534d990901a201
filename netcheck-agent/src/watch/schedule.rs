//! The schedule of a path whose attempts are independent (HTTP, DNS, pod IPs): one attempt per
//! interval, each in its own task, so that an attempt waiting for its timeout does not delay the next.

use std::future::Future;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use netcheck_protocol::watch::Observation;
use tokio::time::MissedTickBehavior;

use super::sequence::{Done, Sequencer};
use super::{Timing, now_ms};

/// Starts `attempt()` every interval, forever; each ends within the timeout (after it, a failure
/// `timeout`), and its result is folded in start order through `sink`. `attempt` returns `Err` with
/// the failure's description.
pub(super) async fn every_interval<F, Fut>(timing: Timing, mut sink: Sequencer, mut attempt: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let mut ticks = tokio::time::interval(timing.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let seq = sink.start();
                let (start_ms, started) = (now_ms(), Instant::now());
                let work = attempt();
                let task = tokio::spawn(async move {
                    tokio::time::timeout(timing.timeout, work).await.unwrap_or_else(|_| Err("timeout".into()))
                });
                running.push(async move {
                    // A task that panicked is a failed attempt too: its sequence number must be used
                    // up, or every later result would wait for it forever.
                    let result = task.await.unwrap_or_else(|e| Err(format!("the attempt failed: {e}")));
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    (seq, Done { observation: Observation { start_ms, elapsed_ms, error: result.err() }, cut: None })
                });
            }
            Some((seq, done)) = running.next() => sink.done(seq, done),
        }
    }
}
