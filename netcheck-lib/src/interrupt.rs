//! Signals during a run: SIGINT, SIGTERM and SIGHUP end the work in hand, whose guards clean up.

use crate::{Error, Result};

/// Runs `work` unless SIGINT, SIGTERM or SIGHUP arrives first. Dropping `work` drops its session
/// guard, which deletes the namespace. From the first signal on, a second SIGINT ends the process at
/// once (its default action): whoever presses Ctrl-C twice does not wait for the clean-up, and what it
/// leaves is what `netcheck gc` collects.
pub(crate) async fn interruptible<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        return work.await;
    };
    let signal = tokio::select! {
        r = work => return r,
        _ = term.recv() => libc::SIGTERM,
        _ = int.recv() => libc::SIGINT,
        _ = hup.recv() => libc::SIGHUP,
    };
    // SAFETY: restores the default disposition of SIGINT; no Rust state is involved.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_DFL) };
    Err(Error::Interrupted { signal })
}
