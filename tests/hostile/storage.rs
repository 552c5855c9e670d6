//! Hostile-input cases: storage.
