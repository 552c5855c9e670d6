//! JSON schemas of the values settings share, for the configuration reference
//! (`docs/reference.md`, see [`super::reference`]). Settings derive `schemars::JsonSchema`;
//! a field whose type schemars cannot see through says which of these it is written as:
//! `#[schemars(with = "crate::config::schema::HumanDuration")]`.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// A string schema with the reference's name for the type: `duration`, `size`, `secret`.
pub fn text(name: &str, description: &str) -> Schema {
    json_schema!({
        "type": "string",
        "format": name,
        "description": description,
    })
}

/// A duration as written in the configuration: `200ms`, `30s`, `5m`, `1h`.
pub struct HumanDuration;

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "duration".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        text("duration", "a duration: `200ms`, `30s`, `5m`, `1h`")
    }
}

/// A size as written in the configuration: `4MiB`, `64KiB`, `1GB`, or a number of bytes.
pub struct Size;

impl JsonSchema for Size {
    fn schema_name() -> Cow<'static, str> {
        "size".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        text("size", "a size: `4MiB`, `64KiB`, `1GB`, or bytes")
    }
}
