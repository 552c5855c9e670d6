//! `docs/reference.md` is generated from the settings types and must match them: a
//! component, key, default or doc comment changed without regenerating fails here.

use std::path::Path;

const REGENERATE: &str = "VELLUM_BLESS=1 cargo test --test reference";

#[test]
fn the_configuration_reference_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md");
    let generated = vellum::config::reference::markdown();
    if std::env::var_os("VELLUM_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or(
                committed.lines().count().min(generated.lines().count()),
                |i| i,
            )
            + 1;
        panic!(
            "docs/reference.md is stale (first difference at line {line}); regenerate it with\n\n    {REGENERATE}\n"
        );
    }
}

#[test]
fn every_registered_component_and_key_appears_in_the_reference() {
    let text = vellum::config::reference::markdown();
    for type_name in vellum::receivers::registry::type_names()
        .iter()
        .chain(vellum::processors::registry::type_names())
        .chain(vellum::exporters::registry::type_names())
    {
        assert!(
            text.contains(&format!("### `{type_name}`\n")),
            "{type_name} is missing"
        );
    }
    // Keys as the loader reads them, nested ones dotted, with defaults and doc comments.
    for row in [
        "| `protocols.grpc.endpoint` | endpoint |",
        "| `origin` | string | **required** |",
        "| `retry_on_failure.max_elapsed_time` | duration |",
        "| `storage.segment_size` | size |",
        "| `signing_key` | secret |",
    ] {
        assert!(text.contains(row), "no row starting `{row}` in:\n{text}");
    }
}
