//! `vellum run --watch`: the configuration file's changes as reload events.
//!
//! | what happens to the file | event |
//! |---|---|
//! | its bytes change (an edit, or an editor's write-and-rename) | `Reload { reason: "the configuration file changed" }`, once |
//! | rewritten with the same bytes, or `touch`ed | none |
//! | unreadable for a moment (mid-rename) or removed | none; it is read again on the next tick |
//!
//! The file is compared by content, not by modification time, so that only a real
//! change reloads. Polling needs no platform notifier and costs one read a tick.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Event;

/// How often `vellum run --watch` reads the file.
pub const EVERY: Duration = Duration::from_secs(1);

/// The reason reload events from the watcher carry.
pub const REASON: &str = "the configuration file changed";

/// The configuration file and the bytes last seen in it.
pub struct ConfigWatch {
    path: PathBuf,
    seen: Option<Vec<u8>>,
}

impl ConfigWatch {
    /// Starts from the file's present content: only later changes count.
    pub fn new(path: PathBuf) -> ConfigWatch {
        let seen = std::fs::read(&path).ok();
        ConfigWatch { path, seen }
    }

    /// Whether the file holds other bytes than when last seen; those become the seen ones.
    pub fn changed(&mut self) -> bool {
        match std::fs::read(&self.path) {
            Ok(now) if self.seen.as_ref() != Some(&now) => {
                self.seen = Some(now);
                true
            }
            _ => false,
        }
    }
}

/// Reads the file every `every` and sends a reload event on each change, until the
/// receiver is gone.
pub fn spawn(path: PathBuf, every: Duration, events: mpsc::Sender<Event>) -> JoinHandle<()> {
    let mut watch = ConfigWatch::new(path);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if watch.changed() && events.send(Event::Reload { reason: REASON }).await.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_content_counts_as_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vellum.yaml");
        std::fs::write(&path, "receivers: {}\n").unwrap();
        let mut watch = ConfigWatch::new(path.clone());
        assert!(!watch.changed(), "nothing happened yet");
        std::fs::write(&path, "receivers: {}\n").unwrap();
        assert!(!watch.changed(), "the same bytes written again");
        std::fs::write(&path, "receivers: { }\n").unwrap();
        assert!(watch.changed(), "one byte more");
        assert!(!watch.changed(), "a change counts once");
    }

    #[test]
    fn a_file_gone_for_a_moment_is_no_change_and_its_return_is_compared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vellum.yaml");
        std::fs::write(&path, "a: 1\n").unwrap();
        let mut watch = ConfigWatch::new(path.clone());
        let aside = dir.path().join("vellum.yaml.tmp");
        std::fs::rename(&path, &aside).unwrap();
        assert!(!watch.changed(), "missing is not a change");
        std::fs::rename(&aside, &path).unwrap();
        assert!(!watch.changed(), "back with the same bytes");
        std::fs::write(&aside, "a: 2\n").unwrap();
        std::fs::rename(&aside, &path).unwrap();
        assert!(watch.changed(), "an editor's write-and-rename");
    }

    #[tokio::test]
    async fn a_change_on_disk_sends_one_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vellum.yaml");
        std::fs::write(&path, "a: 1\n").unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let task = spawn(path.clone(), Duration::from_millis(20), tx);
        std::fs::write(&path, "a: 2\n").unwrap();
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(
            event.expect("a reload within 10 s"),
            Some(Event::Reload { reason: REASON })
        );
        drop(rx);
        std::fs::write(&path, "a: 3\n").unwrap();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the watcher ends once nobody listens")
            .expect("the watcher did not panic");
    }
}
