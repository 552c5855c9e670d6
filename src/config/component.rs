//! What components and the loader share: component ids, the decoder of a component's
//! settings and its errors, endpoints. A leaf module: receivers, processors and
//! exporters import it (and `secret`), never the loader that imports them.

use std::fmt;

use serde::Deserialize;

/// A component id, `type` or `type/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId(String);

impl ComponentId {
    pub fn parse(id: &str) -> Result<ComponentId, String> {
        let (kind, name) = match id.split_once('/') {
            Some((k, n)) => (k, Some(n)),
            None => (id, None),
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        };
        if !valid(kind) || name.is_some_and(|n| !valid(n)) {
            return Err(format!(
                "`{id}` is not a component id: use `type` or `type/name` with letters, digits, `_` and `-`"
            ));
        }
        Ok(ComponentId(id.to_string()))
    }

    /// The component type: `syslog` for `syslog/tcp`.
    pub fn kind(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What each section's config enum provides to the loader.
pub trait ComponentConfig: Sized {
    /// Decodes the settings of component `id` (its type picks the struct).
    fn decode(id: &ComponentId, json: serde_json::Value) -> Result<Self, DecodeError>;
    /// Problems serde cannot see (ranges, combinations), as (path inside the component, message).
    fn problems(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// How a component's typed config failed to decode.
pub enum DecodeError {
    /// The component type does not exist; these do.
    UnknownType(&'static [&'static str]),
    /// `path` is relative to the component's own settings.
    Invalid { path: String, message: String },
}

/// Decodes a typed config from JSON, keeping the path of the first error.
pub fn decode_json<T: serde::de::DeserializeOwned>(
    json: serde_json::Value,
) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        DecodeError::Invalid {
            path,
            message: e.into_inner().to_string(),
        }
    })
}

/// A checked `host:port` that a receiver or exporter binds or connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(pub String);

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Endpoint, D::Error> {
        let s = String::deserialize(d)?;
        Endpoint::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Endpoint, String> {
        let (host, port) = s.rsplit_once(':').ok_or_else(|| {
            format!("`{s}` is not an endpoint: expected `host:port`, e.g. `127.0.0.1:4317`")
        })?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(format!(
                "`{s}`: the host is missing (use 0.0.0.0 to listen on every interface)"
            ));
        }
        if host.parse::<std::net::IpAddr>().is_err()
            && !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        {
            return Err(format!(
                "`{s}`: `{host}` is neither an IP address nor a host name"
            ));
        }
        match port.parse::<u16>() {
            Ok(_) => Ok(Endpoint(s.to_string())),
            Err(_) => Err(format!("`{s}`: the port must be a number from 0 to 65535")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl schemars::JsonSchema for Endpoint {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "endpoint".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        super::schema::text("endpoint", "`host:port`, e.g. `127.0.0.1:4317`")
    }
}
