//! Synod server library: everything the `synod` binary wires together.
pub mod config;
pub mod transport;
