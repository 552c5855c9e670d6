//! The daemon's lifecycle driven in-process through `vellum::app`, with the test as the
//! event source: a reload event starts what the file now configures, a file that does
//! not load is refused while the running pipeline goes on, and a shutdown event (or the
//! last sender gone) drains what was acknowledged into the evidence.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use vellum::app::{self, App, Event, Exit, Options};
use vellum::pipeline::reload::ReloadError;

use common::*;

const WAIT: Duration = Duration::from_secs(60);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for the app")
}

/// `receivers` (id, port) into the chain and `file/evidence`.
fn config(dir: &Path, receivers: &[(&str, u16)]) -> String {
    receivers
        .iter()
        .fold(PipelineConfig::new(dir), |c, (id, port)| {
            c.receiver(
                id,
                format!("{{ endpoint: 127.0.0.1:{port}, path: /v1/events }}"),
            )
        })
        .chain()
        .file("file/evidence", &dir.join("evidence"))
        .yaml()
}

fn start(rt: &tokio::runtime::Runtime, path: &Path) -> App {
    let (config, plan) = app::load_and_plan(Some(path)).expect("the configuration plans");
    let options = Options {
        config_path: Some(path.to_path_buf()),
        drain_timeout: Duration::from_secs(30),
    };
    rt.block_on(App::start(config, plan, options))
        .expect("the app starts")
}

/// Posts one gateway event with `user_id`; the status (0 when nothing answered).
fn post(port: u16, user_id: &str) -> u16 {
    let body = format!("{{\"action\":\"login.failed\",\"user_id\":\"{user_id}\"}}\n");
    let url = format!("http://127.0.0.1:{port}/v1/events");
    http_post(&url, Some("application/x-ndjson"), body.as_bytes()).0
}

fn users_in(dir: &Path) -> BTreeSet<String> {
    evidence_entries(dir)
        .iter()
        .filter_map(|e| e.pointer("/attributes/user_id")?.as_str().map(String::from))
        .collect()
}

#[test]
fn a_reload_event_starts_the_new_receiver_and_a_shutdown_event_drains() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (free_port(), free_port());
    let path = tmp.path().join("vellum.yaml");
    std::fs::write(&path, config(tmp.path(), &[("http/gateway", first)])).unwrap();
    let rt = runtime();
    let app = start(&rt, &path);
    assert_eq!(post(first, "before-reload"), 200);
    assert_eq!(post(second, "nobody-listens"), 0, "not configured yet");

    let (events, received) = mpsc::channel(4);
    let running = rt.spawn(app.run(received));
    let both = [("http/gateway", first), ("http/second", second)];
    std::fs::write(&path, config(tmp.path(), &both)).unwrap();
    events
        .blocking_send(Event::Reload { reason: "test" })
        .unwrap();
    wait_until("the second receiver to answer", WAIT, || {
        post(second, "after-reload") == 200
    });
    assert_eq!(post(first, "kept-receiver"), 200);

    events
        .blocking_send(Event::Shutdown { reason: "test" })
        .unwrap();
    let exit = rt.block_on(running).expect("the app did not panic");
    assert_eq!(exit, Exit::Stopped);
    assert_eq!(post(first, "after-stop"), 0, "receivers are closed");
    // Drained: everything acknowledged is in the evidence, and nothing else.
    let users = users_in(&tmp.path().join("evidence"));
    let expected: BTreeSet<String> = ["before-reload", "after-reload", "kept-receiver"]
        .map(String::from)
        .into();
    assert_eq!(users, expected);
}

#[test]
fn a_file_that_does_not_load_is_refused_and_the_pipeline_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = tmp.path().join("vellum.yaml");
    let good = config(tmp.path(), &[("http/gateway", port)]);
    std::fs::write(&path, &good).unwrap();
    let rt = runtime();
    let mut app = start(&rt, &path);
    let before = app.listening();

    std::fs::write(&path, "receivers: [\n").unwrap();
    match rt.block_on(app.reload("test")) {
        Err(ReloadError::Refused(problems)) => assert!(!problems.is_empty()),
        Err(e) => panic!("refused for the wrong reason: {e}"),
        Ok(summary) => panic!("a broken file was applied: {summary}"),
    }
    assert_eq!(app.listening(), before);
    assert_eq!(post(port, "after-refusal"), 200);

    // Every sender gone is a shutdown too.
    let (events, received) = mpsc::channel(1);
    drop(events);
    assert_eq!(rt.block_on(app.run(received)), Exit::Stopped);
    assert!(users_in(&tmp.path().join("evidence")).contains("after-refusal"));
}
