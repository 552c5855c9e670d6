//! Hostile-input cases: exporters.
