//! `${env:VAR}`, `${env:VAR:-default}` and `${file:PATH}` in configuration scalars.
//!
//! Expansion happens on parsed scalars, never on the YAML text, so a secret containing
//! `: ` or `#` cannot change the document's structure. `$$` is a literal `$`. An expanded
//! value is a string. A scalar that is exactly one reference also records the number or
//! boolean its value reads as, and the loader gives that to a setting that wants one
//! (`${env:PORT}` with `PORT=4317` is the integer 4317 for an integer setting), as the
//! OpenTelemetry Collector does; a string setting, such as a token that happens to be all
//! digits, gets the string as it is. A file's trailing newline is dropped, so
//! `echo secret > key` works. The loader never quotes an expanded value in a problem: it
//! shows the reference instead.

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

/// What a scalar expanded to.
#[derive(Debug, Clone, PartialEq)]
pub struct Expansion {
    /// The scalar as written, shown in messages instead of the value.
    pub reference: String,
    pub value: String,
    /// The number or boolean the value reads as, when the scalar is exactly one reference.
    pub typed: Option<Scalar>,
}

/// Expands the references in one string scalar; on success the scalar is replaced by
/// the expanded string, and what it was is returned (`None` when it held no reference).
pub fn expand_scalar(
    scalar: &mut Scalar,
    source: &dyn Source,
) -> Result<Option<Expansion>, String> {
    let Scalar::Str(text) = scalar else {
        return Ok(None);
    };
    if !text.contains('$') {
        return Ok(None);
    }
    let whole_reference = text.starts_with("${") && text.find('}') == Some(text.len() - 1);
    let expanded = expand(text, source)?;
    let typed = match infer(expanded.clone()) {
        Scalar::Str(_) => None,
        _ if !whole_reference => None,
        typed => Some(typed),
    };
    let expansion = Expansion {
        reference: text.clone(),
        value: expanded.clone(),
        typed,
    };
    *scalar = Scalar::Str(expanded);
    Ok(Some(expansion))
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
            ("SECRET", "0123"),
        ]));
        let mut s = Scalar::Str(text.into());
        expand_scalar(&mut s, &source).map(|_| s)
    }

    fn typed(text: &str) -> Option<Scalar> {
        let source = Fake(HashMap::from([("PORT", "4317"), ("SECRET", "0123")]));
        let mut s = Scalar::Str(text.into());
        expand_scalar(&mut s, &source)
            .unwrap()
            .and_then(|e| e.typed)
    }

    #[test]
    fn references_expand_inside_and_as_whole_scalars() {
        assert_eq!(
            run("${env:HOST}:${env:PORT}"),
            Ok(Scalar::Str("127.0.0.1:4317".into()))
        );
        // A whole reference stays a string, and says what number it reads as.
        assert_eq!(run("${env:PORT}"), Ok(Scalar::Str("4317".into())));
        assert_eq!(typed("${env:PORT}"), Some(Scalar::Int(4317)));
        assert_eq!(typed("${env:SECRET}"), Some(Scalar::Int(123)));
        assert_eq!(typed("x${env:PORT}"), None);
        assert_eq!(run("${env:SECRET}"), Ok(Scalar::Str("0123".into())));
        assert_eq!(run("${env:MISSING:-8088}"), Ok(Scalar::Str("8088".into())));
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
