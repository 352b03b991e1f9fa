//! Turns the etcd-style [`Config`] into what the node and the listeners need.
//!
//! The only place that knows both the flag vocabulary and the runtime types; it resolves URLs,
//! computes member and cluster ids, and builds TLS configurations (etcd's `--auto-tls`
//! certificates go under `<data-dir>/fixtures/{client,peer}` as upstream puts them).

use std::path::Path;

use crate::api::Limits;
use crate::config::{ClusterState, Config, ConfigError, ListenUrl};
use crate::node::NodeSettings;
use crate::raft::MemberNode;
use crate::server::{Listen, ServeSettings};
use crate::transport::tls::{self, PeerTlsConnector, TlsSettings};

fn urls(list: &[ListenUrl]) -> Vec<String> {
    list.iter().map(|u| u.to_string()).collect()
}

fn listeners(
    list: &[ListenUrl],
    tls: &TlsSettings,
    auto_dir: &Path,
    what: &str,
) -> Result<Vec<Listen>, ConfigError> {
    let hosts: Vec<String> = list.iter().map(|u| u.host.clone()).collect();
    let mut server_tls = None;
    let mut out = Vec::new();
    for url in list {
        if url.scheme.is_unix() {
            return Err(ConfigError::Startup(format!(
                "{what}: unix socket URLs are not supported by Synod: {url}"
            )));
        }
        let tls_config = if url.is_tls() {
            if !tls.is_enabled() {
                return Err(ConfigError::Startup(format!(
                    "TLS key/cert ({what}-key-file, {what}-cert-file) must be provided for {what} url {url} with HTTPS scheme"
                )));
            }
            if server_tls.is_none() {
                server_tls = Some(
                    tls::server_config(tls, auto_dir, &hosts)
                        .map_err(|e| ConfigError::Startup(e.to_string()))?,
                );
            }
            server_tls.clone()
        } else {
            None
        };
        let addrs = url
            .socket_addrs()
            .map_err(|e| ConfigError::Startup(format!("{url}: {e}")))?;
        for addr in addrs {
            out.push(Listen {
                addr,
                tls: tls_config.clone(),
            });
        }
    }
    Ok(out)
}

/// Everything `server::run` needs, derived from the configuration.
pub fn settings(cfg: &Config) -> Result<(NodeSettings, ServeSettings), ConfigError> {
    let member_id = cfg.local_member_id().ok_or_else(|| {
        ConfigError::Startup(format!(
            "couldn't find local name {:?} in the initial cluster configuration",
            cfg.name
        ))
    })?;
    let ids = cfg.initial_member_ids();
    let initial_members = cfg
        .initial_cluster_members
        .iter()
        .zip(ids.iter())
        .map(|((name, peer_urls), (_, id))| {
            (
                *id,
                MemberNode {
                    name: name.clone(),
                    peer_urls: urls(peer_urls),
                },
            )
        })
        .collect();

    let client_tls = &cfg.client_tls;
    let peer_tls = &cfg.peer_tls;
    let fixtures = cfg.data_dir.join("fixtures");
    let client = listeners(
        &cfg.listen_client_urls,
        client_tls,
        &fixtures.join("client"),
        "client",
    )?;
    let peer = listeners(
        &cfg.listen_peer_urls,
        peer_tls,
        &fixtures.join("peer"),
        "peer",
    )?;

    let peer_connector = if peer_tls.is_enabled() {
        let client_config =
            tls::client_config(peer_tls).map_err(|e| ConfigError::Startup(e.to_string()))?;
        Some(PeerTlsConnector::new(client_config))
    } else {
        None
    };

    let node = NodeSettings {
        name: cfg.name.clone(),
        data_dir: cfg.data_dir.clone(),
        member_id,
        cluster_id: cfg.initial_cluster_id(),
        initial_members,
        new_cluster: cfg.initial_cluster_state == ClusterState::New,
        advertise_client_urls: urls(&cfg.advertise_client_urls),
        advertise_peer_urls: urls(&cfg.initial_advertise_peer_urls),
        heartbeat_interval: cfg.heartbeat_interval(),
        election_timeout: cfg.election_timeout(),
        snapshot_count: cfg.snapshot_count,
        peer_tls: peer_connector,
    };
    let limits = Limits {
        max_request_bytes: usize::try_from(cfg.max_request_bytes).unwrap_or(usize::MAX),
        max_txn_ops: usize::try_from(cfg.max_txn_ops).unwrap_or(usize::MAX),
    };
    Ok((
        node,
        ServeSettings {
            client,
            peer,
            limits,
            watch_progress_interval: cfg.watch_progress_notify_interval(),
            zk: cfg
                .zk_listen_addr
                .map(|addr| crate::zk::gateway_config(addr, &cfg.zk)),
            zk_addr_given: cfg.zk_listen_addr_given,
        },
    ))
}
