//! Hostile-input cases: receivers.
