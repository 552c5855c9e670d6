//! The process's signals as lifecycle events.
//!
//! | signal | event |
//! |---|---|
//! | SIGHUP | `Reload { reason: "SIGHUP" }` |
//! | SIGTERM | `Shutdown { reason: "SIGTERM" }` |
//! | SIGINT (Ctrl-C) | `Shutdown { reason: "SIGINT" }` |
//!
//! Once installed, the handlers stay for the life of the process: a second SIGTERM
//! while draining does not kill the daemon mid-write.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Event;

/// Installs the handlers and forwards each signal to `events` until the receiver is
/// gone. Fails only when a handler cannot be installed.
pub fn forward(events: mpsc::Sender<Event>) -> std::io::Result<JoinHandle<()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                _ = term.recv() => Event::Shutdown { reason: "SIGTERM" },
                _ = int.recv() => Event::Shutdown { reason: "SIGINT" },
                _ = hup.recv() => Event::Reload { reason: "SIGHUP" },
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Sends `signal` to this process.
    fn raise(signal: libc::c_int) {
        // SAFETY: `kill` on our own pid with a signal whose handler `forward` installed.
        let sent = unsafe { libc::kill(libc::getpid(), signal) };
        assert_eq!(sent, 0, "kill failed");
    }

    #[tokio::test]
    async fn sighup_becomes_a_reload_and_sigterm_a_shutdown() {
        let (tx, mut rx) = mpsc::channel(4);
        let task = forward(tx).expect("handlers installed");
        raise(libc::SIGHUP);
        let first = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(
            first.expect("an event within 10 s"),
            Some(Event::Reload { reason: "SIGHUP" })
        );
        raise(libc::SIGTERM);
        let second = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(
            second.expect("an event within 10 s"),
            Some(Event::Shutdown { reason: "SIGTERM" })
        );
        drop(rx);
        raise(libc::SIGHUP);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the forwarder ends once nobody listens")
            .expect("the forwarder did not panic");
    }
}
