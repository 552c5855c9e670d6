//! Hot reload: a new configuration replaces the running one without losing, duplicating
//! or re-chaining a record.
//!
//! `vellum run` reloads on SIGHUP, and with `--watch` when the file changes. The new
//! configuration is loaded and planned first, with the same checks as `vellum validate`;
//! if anything is wrong, nothing changes and the old configuration keeps running. Then:
//!
//! 1. Receivers whose settings and pipelines are unchanged keep their sockets open;
//!    the others stop (answering what they have in flight).
//! 2. Pipelines the new configuration adds are opened and recovered beside the old ones,
//!    so a broken new pipeline refuses the reload before anything old is touched.
//! 3. The [`Switchboard`](super::intake::Switchboard) holds new submissions back (they wait,
//!    they are not refused) until every submission in flight is durable; the old writers
//!    then commit, sign a last checkpoint and hand their journals to the new writers,
//!    which resume each chain from it: the same stream, the next `seq`.
//! 4. Submissions flow into the new pipelines. The old exporters drain what is committed
//!    (for at most the drain timeout) and each new exporter starts from the cursor the old
//!    one left, so nothing is delivered twice by the daemon itself.
//! 5. New and changed receivers bind their sockets.
//!
//! What a reload cannot change in place is refused with the reason: the storage
//! directory, segment and record sizes, and a pipeline's stream or checkpoint origin
//! (a changed origin is a new log). Retention settings and the readiness threshold apply
//! from the reload on; the metrics address and log settings at the next start.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{
    ExporterLaunch, PipelineHandle, Plan, RunningPipeline, Service, drain, fingerprint,
    launch_driver, open_journal,
};
use crate::config::Config;
use crate::journal::JournalWriter;

/// Why a reload did not happen, or did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Nothing was changed: the old configuration keeps running.
    #[error("reload refused, the running configuration is kept: {}", .0.join("; "))]
    Refused(Vec<String>),
    /// The new configuration runs, but these parts of it could not start.
    #[error("reloaded with errors: {}", .0.join("; "))]
    Incomplete(Vec<String>),
    /// The pipelines could not be restarted; the daemon cannot go on.
    #[error("reload failed: {0}")]
    Fatal(String),
}

/// What a reload changed, for the log.
#[derive(Debug, Default)]
pub struct ReloadSummary {
    pub receivers_kept: Vec<String>,
    pub receivers_started: Vec<String>,
    pub receivers_stopped: Vec<String>,
    pub pipelines_added: Vec<String>,
    pub pipelines_removed: Vec<String>,
    pub pipelines_replaced: Vec<String>,
}

impl std::fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            "receivers kept: {}; started: {}; stopped: {}; pipelines replaced: {}; added: {}; removed: {}",
            list(&self.receivers_kept),
            list(&self.receivers_started),
            list(&self.receivers_stopped),
            list(&self.pipelines_replaced),
            list(&self.pipelines_added),
            list(&self.pipelines_removed),
        )
    }
}

/// How often a reload waiting on submissions in flight says so.
const PAUSE_WARNING: Duration = Duration::from_secs(5);

impl Service {
    /// Replaces the running configuration with `config` (already planned as `plan`).
    pub async fn reload(
        &mut self,
        config: &Config,
        plan: Plan,
        drain_timeout: Duration,
    ) -> Result<ReloadSummary, ReloadError> {
        self.refuse_what_cannot_change(config, &plan)?;
        let mut summary = ReloadSummary::default();
        let new_ids: Vec<String> = plan.pipelines.iter().map(|p| p.id.clone()).collect();

        // Receivers: keep what is unchanged, note what to (re)start.
        let mut to_start = Vec::new();
        let mut kept = Vec::new();
        for (id, cfg, feeds) in plan.receivers {
            let feeds: Vec<String> = feeds.iter().map(|&i| new_ids[i].clone()).collect();
            let unchanged = self
                .receivers
                .iter()
                .position(|r| r.id == id && r.fingerprint == fingerprint(&cfg) && r.feeds == feeds);
            match unchanged {
                Some(i) => kept.push(self.receivers.remove(i)),
                None => to_start.push((id, cfg, feeds)),
            }
        }
        let stopping = std::mem::replace(&mut self.receivers, kept);

        let previous_storage =
            std::mem::replace(&mut self.storage_config, config.service.storage.clone());
        // New pipelines first: if one cannot start, nothing old has been touched.
        let mut added = BTreeMap::new();
        let mut replacing = Vec::new();
        for p in plan.pipelines {
            if self.pipelines.iter().any(|old| old.id == p.id) {
                replacing.push(p);
                continue;
            }
            let started = open_journal(self.storage(), &p.id, self.options)
                .and_then(|(w, j)| self.launch_pipeline(p, j, w));
            match started {
                Ok((running, exporters)) => {
                    added.insert(running.id.clone(), (running, exporters));
                }
                Err(e) => {
                    self.storage_config = previous_storage;
                    self.receivers.extend(stopping);
                    for (_, (running, _)) in added {
                        running.retention_stop.cancel();
                        if let Some(task) = running.retention {
                            let _ = task.await;
                        }
                        running.intake.close();
                        let _ = tokio::task::spawn_blocking(move || running.writer.join()).await;
                    }
                    return Err(ReloadError::Refused(vec![e.to_string()]));
                }
            }
        }

        // From here on the old configuration is being replaced; health checks say so.
        let telemetry = self.attached.take().map(|(status, board)| {
            status.detach(&board);
            status
        });
        for r in &stopping {
            r.stop.cancel();
        }
        let mut previous = BTreeMap::new();
        for r in stopping {
            for h in r.handles {
                let _ = h.task.await;
            }
            if !to_start.iter().any(|(id, _, _)| *id == r.id) {
                summary.receivers_stopped.push(r.id.to_string());
            }
            previous.insert(r.id, (r.config, r.feeds));
        }

        let switchboard = self.switchboard.clone();
        let mut targets = {
            let pause = switchboard.pause(PAUSE_WARNING);
            tokio::pin!(pause);
            loop {
                match (&mut pause).await {
                    Some(guard) => break guard,
                    None => {
                        tracing::warn!(
                            "reload is waiting for submissions in flight to become durable"
                        );
                        pause.set(switchboard.pause(PAUSE_WARNING));
                    }
                }
            }
        };

        // Old writers commit, checkpoint and hand over their journals.
        let mut handed_over: BTreeMap<String, (JournalWriter, Retired)> = BTreeMap::new();
        let mut retiring = Vec::new();
        for old in std::mem::take(&mut self.pipelines) {
            let RunningPipeline {
                id,
                intake,
                writer,
                drivers,
                journal,
                exporters_stop,
                exporters_abandon,
                retention,
                retention_stop,
                ..
            } = old;
            // Retention first, while the writer still takes its purge records.
            retention_stop.cancel();
            if let Some(task) = retention {
                let _ = task.await;
            }
            intake.close();
            exporters_stop.cancel();
            let retired = Retired {
                drivers,
                abandon: exporters_abandon,
                journal,
            };
            match tokio::task::spawn_blocking(move || writer.join()).await {
                Ok(Ok(w)) if new_ids.contains(&id) => {
                    handed_over.insert(id, (w, retired));
                }
                Ok(Ok(_)) => {
                    summary.pipelines_removed.push(id);
                    retiring.push(retired);
                }
                _ => {
                    return Err(ReloadError::Fatal(format!(
                        "the writer of pipeline `{id}` ended abnormally"
                    )));
                }
            }
        }

        let mut launches: Vec<(PipelineHandle, Vec<ExporterLaunch>, Option<Retired>)> = Vec::new();
        for p in replacing {
            let Some((journal_writer, old)) = handed_over.remove(&p.id) else {
                continue;
            };
            let (running, exporters) = self
                .launch_pipeline(p, old.journal.clone(), journal_writer)
                .map_err(|e| ReloadError::Fatal(e.to_string()))?;
            summary.pipelines_replaced.push(running.id.clone());
            launches.push((running.handle(), exporters, Some(old)));
            self.pipelines.push(running);
        }
        for (_, (running, exporters)) in added {
            summary.pipelines_added.push(running.id.clone());
            launches.push((running.handle(), exporters, None));
            self.pipelines.push(running);
        }

        // Kept receivers now feed the new pipelines; records flow again when `targets`
        // is dropped.
        targets.clear();
        for r in &self.receivers {
            targets.insert(r.id.to_string(), self.intake_of(&r.feeds));
            summary.receivers_kept.push(r.id.to_string());
        }
        drop(targets);

        // Exporters: each new driver starts once the old one has let go of its cursor.
        for (handle, exporters, old) in launches {
            let pipeline = self
                .pipelines
                .iter_mut()
                .find(|p| p.id == handle.id)
                .ok_or_else(|| ReloadError::Fatal(format!("pipeline `{}` vanished", handle.id)))?;
            let stop = pipeline.exporters_stop.clone();
            let abandon = pipeline.exporters_abandon.clone();
            pipeline.drivers = vec![tokio::spawn(async move {
                if let Some(old) = old {
                    drain(old.drivers, &old.abandon, drain_timeout).await;
                }
                let mut drivers = Vec::new();
                for e in exporters {
                    let id = e.id.to_string();
                    match launch_driver(&handle, e, &stop, &abandon) {
                        Ok(d) => drivers.push(d),
                        Err(e) => tracing::error!(
                            pipeline = %handle.id,
                            exporter = %id,
                            error = %e,
                            "exporter could not start after the reload; its records wait in the journal"
                        ),
                    }
                }
                futures::future::join_all(drivers).await;
            })];
        }
        for old in retiring {
            tokio::spawn(async move {
                drain(old.drivers, &old.abandon, drain_timeout).await;
                // The journal closes when its last reader lets go.
                drop(old.journal);
            });
        }

        let mut errors = Vec::new();
        for (id, cfg, feeds) in to_start {
            let name = id.to_string();
            let Err(e) = self.start_receiver(id.clone(), &cfg, feeds).await else {
                summary.receivers_started.push(name);
                continue;
            };
            // A changed receiver that cannot bind goes back to its old settings.
            let restored = match previous.remove(&id) {
                Some((old, feeds)) => self.start_receiver(id, &old, feeds).await.is_ok(),
                None => false,
            };
            errors.push(format!(
                "receiver `{name}` could not start: {e}{}",
                if restored {
                    "; it runs with its previous settings"
                } else {
                    ""
                }
            ));
        }
        // The query API follows the new set of pipelines (its index is rebuilt from the
        // journals, answering `"complete": false` until it has caught up).
        if let Some(query) = self.query.take() {
            query.shutdown().await;
        }
        if let Err(e) = self.start_query_api(config).await {
            errors.push(format!("the query API could not start: {e}"));
        }
        if let Some(status) = telemetry {
            self.attach(&status, &config.service.telemetry);
        }
        if errors.is_empty() {
            Ok(summary)
        } else {
            Err(ReloadError::Incomplete(errors))
        }
    }

    fn refuse_what_cannot_change(&self, config: &Config, plan: &Plan) -> Result<(), ReloadError> {
        let mut problems = Vec::new();
        let storage = &config.service.storage;
        if storage.directory != self.storage() {
            problems.push(format!(
                "service.storage.directory: changed from {} to {}; moving the state takes a restart",
                self.storage().display(),
                storage.directory.display()
            ));
        }
        if storage.segment_size.as_u64() != self.options.segment_bytes
            || super::journal_record_limit(storage.max_record_size.as_u64())
                != self.options.max_record_bytes
        {
            problems.push(
                "service.storage: segment_size and max_record_size take effect at the next start"
                    .into(),
            );
        }
        for p in &plan.pipelines {
            let Some(old) = self.pipelines.iter().find(|o| o.id == p.id) else {
                continue;
            };
            if old.stream != p.stream {
                problems.push(format!(
                    "service.pipelines.{}: its stream would change from `{}` to `{}`; a stream continues in its own journal, so give the new stream a new pipeline",
                    p.id, old.stream, p.stream
                ));
            }
            let origin = p.chain.as_ref().map(|c| c.origin_line(&p.stream));
            if old.origin != origin {
                problems.push(format!(
                    "service.pipelines.{}: its checkpoint origin would change from {} to {}; a changed origin is a new log, so give it a new pipeline",
                    p.id,
                    old.origin.as_deref().unwrap_or("none"),
                    origin.as_deref().unwrap_or("none"),
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ReloadError::Refused(problems))
        }
    }
}

/// What is left of a pipeline whose writer has stopped: exporters still draining.
struct Retired {
    drivers: Vec<tokio::task::JoinHandle<()>>,
    abandon: tokio_util::sync::CancellationToken,
    journal: crate::journal::Journal,
}
