//! Harness shared by the compat tests (being written).
