//! A real S3-compatible server for the `s3` exporter's tests and benches: `moto_server`
//! (PyPI `moto[server]`, in tests/common/peers/requirements.txt; scripts/test.sh installs it in
//! the test venv), started on a free loopback port, plus the client-side set-up both
//! need: a connection with moto's test credentials, a bucket under Object Lock, and
//! listing its keys.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_s3::Client;
use vellum::exporters::s3::client::{Connection, StaticCredentials};

use crate::common::{free_port, python, wait_until};

/// `moto_server` on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// The `moto_server` script of the test venv, when it is installed.
    pub fn server() -> Option<PathBuf> {
        let server = python()?.with_file_name("moto_server");
        server.exists().then_some(server)
    }

    /// Starts it with its log in `dir/moto.log` and waits until it answers; panics
    /// saying how to install it when the venv lacks it.
    pub fn start(dir: &Path) -> Moto {
        let server = Moto::server().expect(
            "moto_server is missing: run scripts/test.sh, which installs moto[server] \
             (tests/common/peers/requirements.txt) in the test venv",
        );
        let port = free_port();
        let log = std::fs::File::create(dir.join("moto.log")).expect("create moto.log");
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server.display()));
        let mut moto = Moto { child, port };
        wait_until("moto_server to answer", Duration::from_secs(60), || {
            assert!(
                matches!(moto.child.try_wait(), Ok(None)),
                "moto_server exited:\n{}",
                std::fs::read_to_string(dir.join("moto.log")).unwrap_or_default()
            );
            ureq::get(&format!("http://127.0.0.1:{port}/moto-api/"))
                .call()
                .is_ok()
        });
        moto
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The connection settings for moto at `endpoint` (any credentials pass).
pub fn connection(endpoint: &str) -> Connection {
    Connection {
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.into()),
        force_path_style: true,
        credentials: Some(StaticCredentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        }),
        timeout: Some(Duration::from_secs(20)),
        ..Connection::default()
    }
}

/// A new bucket with Object Lock enabled (and so versioning).
pub async fn create_locked_bucket(client: &Client, bucket: &str) {
    client
        .create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
}

/// Every object under the bucket, by key.
pub async fn objects(client: &Client, bucket: &str) -> Vec<String> {
    objects_after(client, bucket, None).await
}

/// The keys of the bucket that sort after `after` (all with `None`), in order.
pub async fn objects_after(client: &Client, bucket: &str, after: Option<&str>) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .set_start_after(after.map(String::from))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| panic!("list bucket {bucket}: {e:?}"));
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(String::from)),
        );
    }
    keys
}
