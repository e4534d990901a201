//! Live progress on stderr while the run waits on the cluster: a spinner on a terminal, plain lines
//! otherwise (CI logs).

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use netcheck::runner::Progress;

/// Progress drawn with indicatif.
pub struct Bar {
    bar: Option<ProgressBar>,
    start: Instant,
}

impl Bar {
    /// A spinner when `interactive`, else timestamped lines.
    pub fn new(interactive: bool) -> Self {
        let bar = interactive.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>3} {prefix:.bold} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Bar { bar, start: Instant::now() }
    }

    /// Removes the spinner before the report is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn line(&self, text: &str) {
        eprintln!("[{:>5.1}s] {text}", self.start.elapsed().as_secs_f64());
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_prefix(name.to_string());
                bar.set_message("");
            }
            None => self.line(name),
        }
    }

    fn note(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_string()),
            None => self.line(&format!("  {message}")),
        }
    }
}
