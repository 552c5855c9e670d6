//! Running `vellum report`: from the command's arguments to the HTML and JSON files.

use std::path::{Path, PathBuf};

use super::collect::{Request, Source, collect, retention_from_config, sources_from_config};
use super::frameworks::Framework;
use super::html;
use super::model::ReportData;
use super::period::Period;
use crate::config::{Config, ConfigError};
use crate::evidence::verify::{Options, VerifyError};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Period(String),
    #[error("{}", .0.to_string().trim_end())]
    Config(#[from] ConfigError),
    #[error(
        "no evidence directory to read: give --evidence DIR, or a --config with a `file` exporter"
    )]
    NoSources,
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What `vellum report` was asked.
pub struct Invocation<'a> {
    pub framework: Framework,
    pub from: &'a str,
    pub to: &'a str,
    pub config: Option<&'a Path>,
    /// Directories to read instead of the configuration's `file` exporters.
    pub evidence: &'a [PathBuf],
    pub options: Options,
    pub html: &'a Path,
    pub json: Option<&'a Path>,
    pub max_rows: usize,
}

/// Runs `vellum report`: collects, writes the HTML (and the JSON), returns the data.
pub fn run(invocation: &Invocation) -> Result<ReportData, ReportError> {
    let period = Period::parse(invocation.from, invocation.to).map_err(ReportError::Period)?;
    let config = invocation.config.map(Config::load).transpose()?;
    let sources = if invocation.evidence.is_empty() {
        config.as_ref().map(sources_from_config).unwrap_or_default()
    } else {
        invocation
            .evidence
            .iter()
            .map(|dir| Source::new(dir, None))
            .collect()
    };
    if sources.is_empty() {
        return Err(ReportError::NoSources);
    }
    let request = Request {
        framework: invocation.framework,
        period,
        sources,
        options: invocation.options.clone(),
        retention: config.as_ref().map(retention_from_config),
        max_rows: invocation.max_rows,
    };
    let data = collect(&request)?;
    write(invocation.html, html::render(&data).as_bytes())?;
    if let Some(path) = invocation.json {
        let mut json = serde_json::to_vec_pretty(&data).unwrap_or_default();
        json.push(b'\n');
        write(path, &json)?;
    }
    Ok(data)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(|source| ReportError::Write {
        path: path.display().to_string(),
        source,
    })
}
