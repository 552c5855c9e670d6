//! `${env:VAR}`, `${env:VAR:-default}` and `${file:PATH}` in configuration scalars.
//!
//! Expansion happens on parsed scalars, never on the YAML text, so a secret containing
//! `: ` or `#` cannot change the document's structure. `$$` is a literal `$`. A scalar
//! that is exactly one reference takes the type its value reads as (`${env:PORT}` with
//! `PORT=4317` is the integer 4317), as the OpenTelemetry Collector does. A file's
//! trailing newline is dropped, so `echo secret > key` works.

use super::yaml::Scalar;

/// Where expansion gets its values; tests pass their own.
pub trait Source {
    fn env(&self, name: &str) -> Option<String>;
    fn file(&self, path: &str) -> Result<String, String>;
}

/// The process environment and the file system.
pub struct SystemSource;

impl Source for SystemSource {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn file(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))
    }
}

/// Expands the references in one string scalar; on success the scalar is replaced.
pub fn expand_scalar(scalar: &mut Scalar, source: &dyn Source) -> Result<(), String> {
    let Scalar::Str(text) = scalar else {
        return Ok(());
    };
    if !text.contains('$') {
        return Ok(());
    }
    let whole_reference = text.starts_with("${") && text.find('}') == Some(text.len() - 1);
    let expanded = expand(text, source)?;
    *scalar = if whole_reference {
        infer(expanded)
    } else {
        Scalar::Str(expanded)
    };
    Ok(())
}

fn expand(text: &str, source: &dyn Source) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| {
                "unterminated `${`: add the closing `}` (write `$$` for a literal `$`)".to_string()
            })?;
            out.push_str(&resolve(&body[..end], source)?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(reference: &str, source: &dyn Source) -> Result<String, String> {
    if let Some(spec) = reference.strip_prefix("env:") {
        let (name, default) = match spec.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (spec, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "`${{env:{name}}}`: not a valid environment variable name"
            ));
        }
        match (source.env(name), default) {
            (Some(v), _) => Ok(v),
            (None, Some(d)) => Ok(d.to_string()),
            (None, None) => Err(format!(
                "environment variable `{name}` is not set (give a default with `${{env:{name}:-value}}`)"
            )),
        }
    } else if let Some(path) = reference.strip_prefix("file:") {
        let content = source.file(path)?;
        Ok(content
            .strip_suffix('\n')
            .map(|s| s.strip_suffix('\r').unwrap_or(s))
            .unwrap_or(&content)
            .to_string())
    } else {
        let scheme = reference.split(':').next().unwrap_or(reference);
        Err(format!(
            "unknown reference `${{{scheme}:…}}`: use `${{env:NAME}}` or `${{file:PATH}}`"
        ))
    }
}

fn infer(value: String) -> Scalar {
    match value.as_str() {
        "true" => Scalar::Bool(true),
        "false" => Scalar::Bool(false),
        _ => {
            if let Ok(i) = value.parse::<i64>() {
                Scalar::Int(i)
            } else if value.contains('.') && value.parse::<f64>().is_ok_and(f64::is_finite) {
                Scalar::Float(value.parse().unwrap_or_default())
            } else {
                Scalar::Str(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fake(HashMap<&'static str, &'static str>);
    impl Source for Fake {
        fn env(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
        fn file(&self, path: &str) -> Result<String, String> {
            match path {
                "/etc/key" => Ok("s3cr3t: # not yaml\n".into()),
                _ => Err(format!("cannot read `{path}`: No such file or directory")),
            }
        }
    }

    fn run(text: &str) -> Result<Scalar, String> {
        let source = Fake(HashMap::from([
            ("PORT", "4317"),
            ("HOST", "127.0.0.1"),
            ("EMPTY", ""),
        ]));
        let mut s = Scalar::Str(text.into());
        expand_scalar(&mut s, &source).map(|_| s)
    }

    #[test]
    fn references_expand_inside_and_as_whole_scalars() {
        assert_eq!(
            run("${env:HOST}:${env:PORT}"),
            Ok(Scalar::Str("127.0.0.1:4317".into()))
        );
        assert_eq!(run("${env:PORT}"), Ok(Scalar::Int(4317)));
        assert_eq!(run("${env:MISSING:-8088}"), Ok(Scalar::Int(8088)));
        assert_eq!(run("${env:EMPTY:-x}"), Ok(Scalar::Str("".into())));
        assert_eq!(
            run("${file:/etc/key}"),
            Ok(Scalar::Str("s3cr3t: # not yaml".into()))
        );
        assert_eq!(
            run("cost: $$5 and $x"),
            Ok(Scalar::Str("cost: $5 and $x".into()))
        );
    }

    #[test]
    fn bad_references_say_what_to_do() {
        assert!(
            run("${env:MISSING}")
                .unwrap_err()
                .contains("`MISSING` is not set")
        );
        assert!(
            run("${file:/nope}")
                .unwrap_err()
                .contains("cannot read `/nope`")
        );
        assert!(
            run("${vault:x}")
                .unwrap_err()
                .contains("unknown reference `${vault:…}`")
        );
        assert!(run("${env:PORT").unwrap_err().contains("unterminated"));
        assert!(run("${env:BAD-NAME}").unwrap_err().contains("not a valid"));
    }
}
