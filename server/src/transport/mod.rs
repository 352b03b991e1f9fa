//! Client and peer listeners: TCP sockets, TLS, HTTP/1.1 + HTTP/2 serving, and etcd's
//! JSON gateway.
//!
//! * [`tls`] — etcd-compatible TLS settings → rustls configs (incl. auto-TLS), peer dialer.
//! * [`listener`] — bind, accept loop, per-connection TLS handshake, h1/h2c/h2 serving of an
//!   `axum::Router`, graceful shutdown.
//! * [`gateway`] — the grpc-gateway v1 JSON API, `/health`, `/version`, and the merged
//!   client router.
//!
//! This layer must never implement etcd semantics (storage, raft, auth decisions); it only
//! moves bytes between sockets and the service implementations it is handed.
//!
//! Typical wiring of a client URL:
//! ```text
//! let tls = settings.is_enabled().then(|| tls::server_config(&settings, &dir, &hosts)).transpose()?;
//! let grpc = tonic::service::Routes::new(KvServer::new(kv.clone())).add_service(...);
//! let app = gateway::client_router(grpc, gateway::json_gateway(kv, maint, cluster, health));
//! let listener = listener::bind(addr)?;
//! tokio::spawn(listener::serve(listener, tls, app, shutdown));
//! ```

pub mod gateway;
pub mod listener;
pub mod tls;
pub mod url_authority;
pub mod watch_route;

#[cfg(test)]
mod test_support;

pub use gateway::{
    client_router, json_gateway, json_gateway_with_config, GatewayConfig, HealthCheck,
};
pub use listener::{bind, serve, BindError, ConnInfo};
pub use tls::{client_config, server_config, PeerTlsConnector, TlsError, TlsSettings};
