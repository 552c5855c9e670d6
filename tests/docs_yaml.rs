//! Every YAML block a user can copy passes `vellum validate`: the ```` ```yaml ```` blocks
//! of `README.md` and `docs/*.md`, the YAML examples in the source's module docs, and
//! `pipelines/*.yaml`.
//!
//! The convention that keeps the docs readable: a block may be a fragment. It is
//! completed, never changed, before validation:
//!
//! | what the block lacks | what the test supplies |
//! |---|---|
//! | a component a pipeline names (`otlp`, `http/gateway`, `hash_chain`, `hmac_sign`, `file/evidence`, `file/pager`, `webhook/pager`) | its definition from [`SKELETON`]; any other undefined id stays an error |
//! | `receivers` / `exporters` in a pipeline | `[otlp]` / `[file/evidence]` |
//! | a pipeline for each pipeline or stream a query token is scoped to | `otlp` through `hash_chain` to `file/evidence` |
//! | a pipeline for the components it defines | `logs/docs`, from their receivers (or `otlp`) through their processors and `hash_chain` to their exporters (or `file/evidence`) |
//! | `${env:NAME}` values | a placeholder of 40 characters |
//! | `${file:/path}` files | the file under a temporary root, from [`placeholder_file`] |
//! | certificate and key files (`/….pem`, `.crt`, `.key` as a value) | made under the temporary root: a CA for a name with `ca`, a key for `.key` or `key.pem`, else a certificate that CA signed |
//!
//! A block that shows a mistake on purpose opens with ```` ```yaml invalid ```` and is
//! skipped, visibly, in the source.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

use common::BIN;
use common::peers::tls_sink::Ca;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The components docs name without defining, defined as a reader would have them.
const SKELETON: &str = r#"
receivers:
  otlp: { protocols: { grpc: { endpoint: 127.0.0.1:4317 } } }
  http/gateway: { endpoint: 127.0.0.1:8088 }
processors:
  hash_chain: { origin: audit.example.com }
  hmac_sign: { keys: [{ id: k1, key: "${env:AUDIT_HMAC_KEY}" }] }
exporters:
  file/evidence: { directory: /var/lib/vellum/evidence }
  file/pager: { directory: /var/lib/vellum/pager }
  webhook/pager: { url: https://pager.example.com/hooks/vellum }
"#;

const SECTIONS: [&str; 3] = ["receivers", "processors", "exporters"];

/// A YAML example and where it stands (`README.md:128`).
struct Block {
    origin: String,
    text: String,
}

/// The ```` ```yaml ```` blocks of a text whose lines carry `prefix` (`//! ` in Rust
/// module docs, nothing in Markdown); opted-out blocks go to `skipped`.
fn blocks_in(file: &Path, prefix: &str, skipped: &mut Vec<String>) -> Vec<Block> {
    let text = std::fs::read_to_string(file).unwrap();
    let name = file
        .strip_prefix(ROOT)
        .unwrap_or(file)
        .display()
        .to_string();
    let mut out = Vec::new();
    let mut open: Option<(usize, bool, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = if prefix.is_empty() {
            Some(raw)
        } else {
            let line = raw.trim_start().strip_prefix(prefix.trim_end());
            line.map(|l| l.strip_prefix(' ').unwrap_or(l))
        };
        let Some(line) = line else {
            open = None;
            continue;
        };
        match &mut open {
            None => {
                if let Some(info) = line.trim().strip_prefix("```yaml") {
                    let invalid = match info.trim() {
                        "" => false,
                        "invalid" => true,
                        other => panic!("{name}:{}: unknown marker `{other}`", i + 1),
                    };
                    open = Some((i + 1, invalid, String::new()));
                }
            }
            Some((start, invalid, body)) => {
                if line.trim() == "```" {
                    let origin = format!("{name}:{start}");
                    if *invalid {
                        skipped.push(origin);
                    } else {
                        out.push(Block {
                            origin,
                            text: std::mem::take(body),
                        });
                    }
                    open = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    out
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![Path::new(ROOT).join(dir)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every block, with the opted-out ones listed apart.
fn every_block() -> (Vec<Block>, Vec<String>) {
    let mut skipped = Vec::new();
    let mut blocks = blocks_in(&Path::new(ROOT).join("README.md"), "", &mut skipped);
    for doc in files("docs", "md") {
        blocks.extend(blocks_in(&doc, "", &mut skipped));
    }
    for source in files("src", "rs") {
        blocks.extend(blocks_in(&source, "//! ", &mut skipped));
        blocks.extend(blocks_in(&source, "/// ", &mut skipped));
    }
    for pipeline in files("pipelines", "yaml") {
        let name = pipeline.strip_prefix(ROOT).unwrap().display().to_string();
        let text = std::fs::read_to_string(&pipeline).unwrap();
        blocks.push(Block { origin: name, text });
    }
    (blocks, skipped)
}

fn map(value: &mut Value) -> &mut Map<String, Value> {
    if !value.is_object() {
        *value = json!({});
    }
    value.as_object_mut().unwrap()
}

/// The ids the pipelines of `config` name in `section`.
fn used(config: &Value, section: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let pipelines = config["service"]["pipelines"].as_object();
    for pipeline in pipelines.into_iter().flat_map(|p| p.values()) {
        for entry in pipeline[section].as_array().into_iter().flatten() {
            let id = entry.as_str().or_else(|| entry["id"].as_str());
            out.extend(id.map(str::to_string));
        }
    }
    out
}

/// What the block defines in `section` and no pipeline uses, in its order.
fn unused(config: &Value, section: &str) -> Vec<String> {
    let used = used(config, section);
    let defined = config[section]
        .as_object()
        .into_iter()
        .flat_map(|m| m.keys());
    defined.filter(|id| !used.contains(*id)).cloned().collect()
}

/// The pipelines and streams the block's query tokens are scoped to: a reader's own
/// pipelines, which the block names without defining.
fn scoped_names(config: &Value) -> BTreeSet<String> {
    let tokens = config["service"]["api"]["auth"]["tokens"].as_array();
    let lists = tokens
        .into_iter()
        .flatten()
        .flat_map(|t| [&t["pipelines"], &t["streams"]]);
    let names = lists
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str);
    names.map(str::to_string).collect()
}

/// The block completed as the module docs say; what it defines is left as written.
fn complete(fragment: Value) -> Value {
    let mut config = fragment;
    let root = map(&mut config);
    let service = map(root.entry("service").or_insert(json!({})));
    let pipelines = map(service.entry("pipelines").or_insert(json!({})));
    for pipeline in pipelines.values_mut() {
        let pipeline = map(pipeline);
        pipeline.entry("receivers").or_insert(json!(["otlp"]));
        pipeline
            .entry("exporters")
            .or_insert(json!(["file/evidence"]));
    }
    let [receivers, processors, exporters] = SECTIONS.map(|s| unused(&config, s));
    let no_pipeline = config["service"]["pipelines"]
        .as_object()
        .is_none_or(Map::is_empty);
    if no_pipeline || !receivers.is_empty() || !processors.is_empty() || !exporters.is_empty() {
        let seals = |id: &String| id.starts_with("hash_chain") || id.starts_with("hmac_sign");
        let mut chain: Vec<String> = processors.iter().filter(|p| !seals(p)).cloned().collect();
        let own_chain = processors.iter().find(|p| p.starts_with("hash_chain"));
        chain.push(own_chain.cloned().unwrap_or_else(|| "hash_chain".into()));
        chain.extend(
            processors
                .iter()
                .filter(|p| p.starts_with("hmac_sign"))
                .cloned(),
        );
        let or = |ids: Vec<String>, default: &str| {
            if ids.is_empty() {
                vec![default.to_string()]
            } else {
                ids
            }
        };
        config["service"]["pipelines"]["logs/docs"] = json!({
            "receivers": or(receivers, "otlp"),
            "processors": chain,
            "exporters": or(exporters, "file/evidence"),
        });
    }
    for name in scoped_names(&config) {
        if name != "*"
            && name != "vellum/access"
            && config["service"]["pipelines"].get(&name).is_none()
        {
            config["service"]["pipelines"][name.as_str()] = json!({
                "receivers": ["otlp"], "processors": ["hash_chain"], "exporters": ["file/evidence"],
            });
        }
    }
    let skeleton: Value = serde_saphyr::from_str(SKELETON).unwrap();
    for section in SECTIONS {
        for id in used(&config, section) {
            let defined = config[section].get(&id).is_some();
            if let (false, Some(settings)) = (defined, skeleton[section].get(&id)) {
                map(&mut config[section]).insert(id, settings.clone());
            }
        }
    }
    config
}

/// The content of a file a block reads with `${file:…}`, by its path in the docs.
fn placeholder_file(path: &str) -> Option<String> {
    match path {
        "/etc/vellum/checkpoint.key" => Some(signing_key("audit.example.com/logs/audit")),
        "/etc/vellum/hmac-2025.key" => Some(PLACEHOLDER.to_string()),
        // A token of its own: two tokens may not share a value.
        "/run/secrets/siem_query_token" => Some(format!("{PLACEHOLDER}-siem")),
        _ => None,
    }
}

const PLACEHOLDER: &str = "placeholder-secret-0123456789abcdef-0123";

fn signing_key(name: &str) -> String {
    let out = Command::new(BIN)
        .args(["keygen", "--name", name])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines().next().unwrap().to_string()
}

/// `text` with every certificate or key file it names as a value made under `tmp`: one
/// CA and one certificate it signed, so that a pair named together matches.
fn with_certificates(text: &str, tmp: &Path) -> String {
    let pki = tmp.join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let ca = Ca::new(&pki, "docs-ca");
    let leaf = ca.issue(&pki, "docs", &["localhost"]);
    let mut out = text.to_string();
    let pattern = regex::Regex::new(r#""(/[^"$]+\.(?:pem|crt|key))""#).unwrap();
    for found in pattern.captures_iter(text) {
        let path = &found[1];
        let name = path.rsplit('/').next().unwrap_or(path);
        let source = if name.ends_with(".key") || name.ends_with("key.pem") {
            &leaf.key_file
        } else if name.contains("ca") {
            &ca.cert_file
        } else {
            &leaf.cert_file
        };
        let local = tmp.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::copy(source, &local).unwrap();
        out = out.replace(&format!("\"{path}\""), &format!("\"{}\"", local.display()));
    }
    out
}

/// `${kind:NAME…}` references in `text`: the NAME of each that has no `:-` default.
fn references<'t>(text: &'t str, kind: &str) -> Vec<&'t str> {
    let open = format!("${{{kind}:");
    text.match_indices(&open)
        .filter_map(|(at, _)| {
            let rest = &text[at + open.len()..];
            let inner = &rest[..rest.find('}')?];
            (!inner.contains(":-")).then_some(inner)
        })
        .collect()
}

/// Validates one block; the failure as text.
fn check(block: &Block, tmp: &Path) -> Result<(), String> {
    let fragment: Value = serde_saphyr::from_str(&block.text)
        .map_err(|e| format!("{}: not YAML: {e}", block.origin))?;
    let mut text = serde_json::to_string_pretty(&complete(fragment)).unwrap();
    for path in references(&text.clone(), "file") {
        let content = placeholder_file(path).ok_or_else(|| {
            format!(
                "{}: no placeholder for `${{file:{path}}}`; add one to placeholder_file",
                block.origin
            )
        })?;
        let local = tmp.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(&local, content).unwrap();
        text = text.replace(
            &format!("${{file:{path}}}"),
            &format!("${{file:{}}}", local.display()),
        );
    }
    text = with_certificates(&text, tmp);
    let config = tmp.join("config.yaml");
    std::fs::write(&config, &text).unwrap();
    let mut validate = Command::new(BIN);
    validate.args(["validate", "--config"]).arg(&config);
    validate.env("VELLUM_DATA", tmp.join("data"));
    for name in references(&text, "env") {
        validate.env(name, PLACEHOLDER);
    }
    let out = validate.output().unwrap();
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{} does not validate:\n{}\ncompleted as:\n{text}",
        block.origin,
        String::from_utf8_lossy(&out.stderr)
    ))
}

#[test]
fn every_yaml_block_in_the_docs_validates() {
    let (blocks, skipped) = every_block();
    let origins: Vec<&str> = blocks.iter().map(|b| b.origin.as_str()).collect();
    for expected in [
        "README.md:",
        "docs/conditions.md:",
        "docs/retention.md:",
        "src/processors/redact/mod.rs:",
        "pipelines/default.yaml",
    ] {
        assert!(
            origins.iter().any(|o| o.starts_with(expected)),
            "no block found in {expected}: {origins:?}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let failures: Vec<String> = blocks
        .iter()
        .enumerate()
        .filter_map(|(i, block)| {
            let dir = tmp.path().join(i.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            check(block, &dir).err()
        })
        .collect();
    eprintln!(
        "{} blocks validated; opted out with ```yaml invalid: {skipped:?}",
        blocks.len() - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} blocks fail:\n\n{}",
        failures.len(),
        blocks.len(),
        failures.join("\n\n")
    );
}
