//! Hostile-input cases: config.
