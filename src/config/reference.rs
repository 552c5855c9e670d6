//! The configuration reference, `docs/reference.md`, generated from the settings types:
//! every registered component's keys with their type, default and doc comment, the keys
//! every exporter shares, `extensions` and `service`. `tests/reference.rs` fails when
//! the committed file differs; `VELLUM_BLESS=1 cargo test --test reference` rewrites it.
//!
//! | schema (from `schemars::JsonSchema`)   | reference |
//! |----------------------------------------|-----------|
//! | a struct                               | one row per key, nested structs as `a.b` rows |
//! | `format` (`duration`, `size`, `secret`, `endpoint`, `condition`) | that word |
//! | `enum` / `const` / `oneOf` of constants | the values, `` `a` \| `b` `` |
//! | a list / a map                         | `list of …` / `map of …` |
//! | `Option<T>`                            | the type of `T`, with no default |
//! | a map of ids to settings (`pipelines`) | `<id>.` rows for the settings' keys |
//! | a tagged enum's variant                | `{ type: x, … }` |
//! | the field's doc comment                | its first paragraph, on one line |

use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value};

use crate::exporters::registry::EXPORTERS;
use crate::processors::registry::PROCESSORS;
use crate::receivers::registry::RECEIVERS;

/// The whole reference, as committed in `docs/reference.md`.
pub fn markdown() -> String {
    let mut g = SchemaGenerator::default();
    let mut out = String::from(HEADER);
    let sections: [(&str, Vec<(&str, Schema)>); 3] = [
        (
            "receivers",
            RECEIVERS
                .iter()
                .map(|f| (f.type_name, (f.schema)(&mut g)))
                .collect(),
        ),
        (
            "processors",
            PROCESSORS
                .iter()
                .map(|f| (f.type_name, (f.schema)(&mut g)))
                .collect(),
        ),
        (
            "exporters",
            EXPORTERS
                .iter()
                .map(|f| (f.type_name, (f.schema)(&mut g)))
                .collect(),
        ),
    ];
    let delivery = g.subschema_for::<crate::exporters::DeliverySettings>();
    let extensions = g.subschema_for::<crate::telemetry::ExtensionsConfig>();
    let service = g.subschema_for::<super::ServiceConfig>();
    let defs = g.definitions().clone();
    for (section, components) in &sections {
        out.push_str(&format!("\n## `{section}`\n"));
        for (type_name, schema) in components {
            out.push_str(&format!("\n### `{type_name}`\n\n"));
            out.push_str(&table(schema.as_value(), &defs));
        }
        if *section == "exporters" {
            out.push_str("\n### Keys every exporter takes\n\n");
            out.push_str(&table(delivery.as_value(), &defs));
        }
    }
    out.push_str("\n## `extensions`\n\n");
    out.push_str(&table(extensions.as_value(), &defs));
    out.push_str("\n## `service`\n\n");
    out.push_str(&table(service.as_value(), &defs));
    out
}

const HEADER: &str = "# Configuration reference

Generated from the settings types by `VELLUM_BLESS=1 cargo test --test reference`; do not
edit by hand. Every key of every component, with its type, its default and what it does.
Keys are nested with `.`: `protocols.grpc.endpoint` is written

```text
protocols:
  grpc:
    endpoint: 127.0.0.1:4317
```

A default of `—` means the key is optional and unset unless given; **required** keys have
none. Secrets are best given as `${env:NAME}` or `${file:/path}`.
";

/// One table of keys, or the schema's description when it has none.
fn table(schema: &Value, defs: &Map<String, Value>) -> String {
    let schema = resolve(schema, defs);
    let mut rows = Vec::new();
    collect_rows(schema, defs, "", &mut rows);
    let mut out = String::new();
    if let Some(text) = description(schema) {
        out.push_str(&text);
        out.push_str("\n\n");
    }
    if rows.is_empty() {
        out.push_str("No keys.\n");
        return out;
    }
    out.push_str("| key | type | default | description |\n|---|---|---|---|\n");
    for row in rows {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            row.key,
            row.kind,
            row.default,
            row.description.replace('|', "\\|")
        ));
    }
    out
}

struct Row {
    key: String,
    kind: String,
    default: String,
    description: String,
}

fn collect_rows(schema: &Value, defs: &Map<String, Value>, prefix: &str, rows: &mut Vec<Row>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (key, property) in properties {
        let path = format!("{prefix}{key}");
        let target = resolve(non_null(property, defs), defs);
        let nested = target.get("properties").is_some();
        // A map of ids to settings (`pipelines`): its settings' keys under `<id>`.
        let per_id = target
            .get("additionalProperties")
            .map(|values| resolve(values, defs))
            .filter(|values| values.get("properties").is_some());
        rows.push(Row {
            key: path.clone(),
            kind: match (nested, per_id) {
                (true, _) => "map".into(),
                (false, Some(_)) => "map of ids to maps".into(),
                (false, None) => kind(property, defs),
            },
            default: match property.get("default") {
                _ if required.contains(&key.as_str()) => "**required**".into(),
                Some(v) if !nested => default_text(v),
                _ => "—".into(),
            },
            description: description(property)
                .or_else(|| description(target))
                .unwrap_or_default(),
        });
        if nested {
            collect_rows(target, defs, &format!("{path}."), rows);
        } else if let Some(values) = per_id {
            collect_rows(values, defs, &format!("{path}.<id>."), rows);
        }
    }
}

/// The definition a `$ref` names, or the schema itself.
fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .rsplit('/')
            .next()
            .and_then(|name| defs.get(name))
            .unwrap_or(schema),
        None => schema,
    }
}

/// For `Option<T>`, written as `anyOf: [T, null]`: the schema of `T`.
fn non_null<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    let schema = resolve(schema, defs);
    match schema.get("anyOf").and_then(Value::as_array) {
        Some(options) if options.len() == 2 => options
            .iter()
            .find(|o| o.get("type").and_then(Value::as_str) != Some("null"))
            .unwrap_or(schema),
        _ => schema,
    }
}

/// The type as the reference names it.
fn kind(schema: &Value, defs: &Map<String, Value>) -> String {
    let schema = resolve(schema, defs);
    // Number formats (`uint32`, `double`) add nothing to `integer` and `number`.
    if let Some(format) = schema.get("format").and_then(Value::as_str)
        && !format.starts_with("int")
        && !format.starts_with("uint")
        && format != "double"
    {
        return format.to_string();
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(default_text)
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    if let Some(value) = schema.get("const") {
        return default_text(value);
    }
    // A tagged enum's variant: `{ type: bearer, … }`.
    if let Some(tag) = schema
        .pointer("/properties/type/const")
        .and_then(Value::as_str)
    {
        return format!("`{{ type: {tag}, … }}`");
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let kinds: Vec<String> = options
                .iter()
                .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
                .map(|o| kind(o, defs))
                .collect();
            return kinds.join(" or ");
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    match types.iter().find(|t| **t != "null").copied() {
        Some("array") => match schema.get("items") {
            Some(items) => format!("list of {}", kind(items, defs)),
            None => "list".into(),
        },
        Some("object") => match schema.get("additionalProperties") {
            Some(Value::Bool(false)) | None => "map".into(),
            Some(values) => format!("map of {}", kind(values, defs)),
        },
        Some(t) => t.to_string(),
        None => "any".into(),
    }
}

/// A value in backticks, as it would be written in YAML.
fn default_text(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() => "`\"\"`".into(),
        Value::String(s) => format!("`{s}`"),
        Value::Null => "—".into(),
        other => format!("`{other}`"),
    }
}

/// The doc comment's first paragraph, on one line, rustdoc links as plain code.
fn description(schema: &Value) -> Option<String> {
    let mut text = String::new();
    if let Some(title) = schema.get("title").and_then(Value::as_str) {
        text.push_str(title);
        text.push_str(". ");
    }
    if let Some(body) = schema.get("description").and_then(Value::as_str) {
        text.push_str(body.split("\n\n").next().unwrap_or(body));
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text.replace("[`", "`").replace("`]", "`");
    (!text.is_empty()).then_some(text)
}
