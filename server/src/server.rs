//! Start-up and shutdown of a whole member: bind the listeners, start the node, serve the peer
//! and client services, publish the member, and stop cleanly on SIGINT/SIGTERM.
//!
//! Listeners are bound before any data file is opened, so a port in use fails fast with etcd's
//! text and leaves the data directory untouched.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use synod_proto::etcdserverpb::cluster_server::ClusterServer;
use synod_proto::etcdserverpb::kv_server::KvServer;
use synod_proto::etcdserverpb::lease_server::LeaseServer;
use synod_proto::etcdserverpb::maintenance_server::MaintenanceServer;
use synod_proto::etcdserverpb::RangeRequest;
use synod_proto::peerpb::peer_server::PeerServer;
use synod_proto::v3electionpb::election_server::ElectionServer;
use synod_proto::v3lockpb::lock_server::LockServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::cluster::ClusterService;
use crate::api::election::ElectionService;
use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::lock::LockService;
use crate::api::maintenance::MaintenanceService;
use crate::api::watch::WatchService;
use crate::api::Limits;
use crate::lease::Lessor;
use crate::metrics::Gauge;
use crate::node::{Node, NodeSettings, StartError};
use crate::raft::network::MAX_PEER_MESSAGE;
use crate::raft::peer_service::PeerService;
use crate::transport::watch_route::WatchRoute;
use crate::transport::{gateway, listener};
use crate::watch::WatchHub;

/// One address to listen on, with its TLS configuration if the URL was `https://`.
pub struct Listen {
    pub addr: SocketAddr,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

pub struct ServeSettings {
    pub client: Vec<Listen>,
    pub peer: Vec<Listen>,
    pub limits: Limits,
    /// `--experimental-watch-progress-notify-interval`, as etcd applies it.
    pub watch_progress_interval: Duration,
    /// The embedded ZooKeeper gateway, if `--zk-listen-addr` is set.
    pub zk: Option<zk_gateway::Config>,
    /// Whether that address was given explicitly (else a taken port only disables it).
    pub zk_addr_given: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Listen(String),
    #[error(transparent)]
    Start(#[from] StartError),
}

/// Runs a member until `shutdown` resolves.
pub async fn run(
    node_settings: NodeSettings,
    serve: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let mut peer_listeners = Vec::new();
    for l in serve.peer {
        let tcp = listener::bind(l.addr).map_err(|e| RunError::Listen(e.to_string()))?;
        peer_listeners.push((tcp, l.tls));
    }
    let mut client_listeners = Vec::new();
    for l in serve.client {
        let tcp = listener::bind(l.addr).map_err(|e| RunError::Listen(e.to_string()))?;
        client_listeners.push((tcp, l.tls));
    }
    let zk_listener = match &serve.zk {
        Some(cfg) => match zk_gateway::bind(cfg).await {
            Ok(l) => Some(l),
            Err(e) if !serve.zk_addr_given => {
                // the default 127.0.0.1:2181 is taken (another member on this host, or a
                // ZooKeeper): an etcd command line must still start
                tracing::warn!(error = %e,
                    "ZooKeeper listener disabled: its default address is in use (set --zk-listen-addr)");
                None
            }
            Err(e) => return Err(RunError::Listen(e.to_string())),
        },
        None => None,
    };

    // The lessor and the watch hub exist before the node: the node's state machine reports
    // applied lease grants, revocations and events to them.
    let lessor = Lessor::new(&node_settings);
    let hub = WatchHub::new();
    let node =
        Node::start_with_observers(node_settings, vec![lessor.observer(), hub.observer()]).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    lessor.start(node.clone(), stop_rx.clone());
    hub.start(node.clone(), stop_rx.clone());

    let peer_app = tonic::service::Routes::new(
        PeerServer::new(PeerService::new(node.raft().clone(), lessor.duties()))
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE),
    )
    .prepare()
    .into_axum_router();
    for (tcp, tls) in peer_listeners {
        spawn_serve(tcp, tls, peer_app.clone(), stop_rx.clone());
    }

    let client_app = client_router(
        &node,
        &lessor,
        &hub,
        serve.limits,
        serve.watch_progress_interval,
    );
    // As etcd, clients are served only once the member is ready (its attributes published
    // through raft): before that the port accepts connections and leaves them waiting, so no
    // client sees a member list without this member's name.
    let (ready_tx, ready_rx) = watch::channel(false);
    for (tcp, tls) in client_listeners {
        let (app, stop, mut ready) = (client_app.clone(), stop_rx.clone(), ready_rx.clone());
        let mut stop_wait = stop_rx.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = ready.wait_for(|r| *r) => {
                    if r.is_ok() {
                        spawn_serve(tcp, tls, app, stop);
                    }
                }
                _ = stop_wait.wait_for(|s| *s) => {}
            }
        });
    }

    if let (Some(cfg), Some(tcp)) = (serve.zk, zk_listener) {
        let backend = std::sync::Arc::new(crate::zk::Embedded {
            // A ZooKeeper multi of n creates is about 6n etcd operations; upstream ZooKeeper
            // bounds a multi only by jute.maxbuffer, so the in-process gateway is not held to
            // --max-txn-ops (still to the request size limit).
            kv: KvService::new(
                node.clone(),
                crate::api::Limits {
                    max_txn_ops: usize::MAX,
                    ..serve.limits
                },
            ),
            lease: LeaseService::new(node.clone(), lessor.clone(), serve.limits),
            watch: WatchService::new(
                node.clone(),
                hub.clone(),
                serve.limits.max_grpc_recv_bytes(),
                serve.watch_progress_interval,
            ),
        });
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            // The gateway opens its store through this member's services: wait for a leader.
            tokio::select! {
                r = zk_gateway::serve(backend, cfg, tcp) => {
                    if let Err(e) = r {
                        tracing::error!(error = %e, "ZooKeeper gateway stopped");
                    }
                }
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }

    let publisher = node.clone();
    tokio::spawn(async move {
        match publisher.publish().await {
            Ok(()) => {
                let _ = ready_tx.send(true);
                tracing::info!(
                    name = %publisher.settings().name,
                    member_id = %format!("{:x}", publisher.member_id()),
                    cluster_id = %format!("{:x}", publisher.cluster_id()),
                    "published local member to cluster through raft"
                );
                tracing::info!("enabled capabilities for version 3.4");
                tracing::info!("ready to serve client requests");
            }
            Err(e) => {
                tracing::error!(error = %e, "failed to publish local member to cluster through raft")
            }
        }
    });

    shutdown.await;
    tracing::info!("received stop signal, shutting down");
    let _ = stop_tx.send(true);
    node.shutdown().await;
    Ok(())
}

fn spawn_serve(
    tcp: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        listener::serve(tcp, tls, app, stopped).await;
    });
}

/// The client port: etcd's gRPC services and, on the same port, the JSON gateway.
fn client_router(
    node: &Node,
    lessor: &Lessor,
    hub: &WatchHub,
    limits: Limits,
    watch_progress_interval: Duration,
) -> axum::Router {
    let decode = limits.transport_decode_limit();
    let watch = WatchService::new(
        node.clone(),
        hub.clone(),
        // etcd fragments watch responses at its gRPC limit (request limit + overhead).
        limits.max_grpc_recv_bytes(),
        watch_progress_interval,
    );
    let watch_metrics = watch.clone();
    let kv = KvService::new(node.clone(), limits);
    let election = ElectionService::new(node.clone(), hub.clone(), limits);
    let lock = LockService::new(node.clone(), hub.clone(), limits);
    let lease = LeaseService::new(node.clone(), lessor.clone(), limits);
    let maintenance = MaintenanceService::new(node.clone());
    let cluster = ClusterService::new(node.clone());
    let grpc =
        tonic::service::Routes::new(KvServer::new(kv.clone()).max_decoding_message_size(decode))
            .add_service(
                MaintenanceServer::new(maintenance.clone()).max_decoding_message_size(decode),
            )
            .add_service(ClusterServer::new(cluster.clone()).max_decoding_message_size(decode))
            .add_service(LeaseServer::new(lease.clone()).max_decoding_message_size(decode))
            .add_service(WatchRoute::new(watch.clone()).max_decoding_message_size(decode))
            .add_service(ElectionServer::new(election.clone()).max_decoding_message_size(decode))
            .add_service(LockServer::new(lock.clone()).max_decoding_message_size(decode));
    let health_node = node.clone();
    let health: gateway::HealthCheck =
        Arc::new(move || -> BoxFuture<'static, Result<(), String>> {
            let node = health_node.clone();
            Box::pin(async move { health_check(&node).await })
        });
    let config = gateway::GatewayConfig {
        max_request_bytes: limits.max_request_bytes,
    };
    gateway::client_router(
        grpc,
        gateway::json_gateway_with_config(config, kv, maintenance, cluster, health)
            .merge(gateway::lease_routes(config, Arc::new(lease.clone())))
            .merge(streaming_routes(config, watch, lease))
            .merge(gateway::election_routes(config, Arc::new(election)))
            .merge(gateway::lock_routes(config, Arc::new(lock)))
            .merge(gateway::metrics_routes(metrics_text(
                node,
                hub,
                watch_metrics,
            ))),
    )
}

/// What `/metrics` reports, read from the parts that own each figure.
fn metrics_text(node: &Node, hub: &WatchHub, watch: WatchService) -> gateway::MetricsText {
    let (node, hub) = (node.clone(), hub.clone());
    Arc::new(move || {
        let (watchers, synced) = hub.counts();
        crate::metrics::render(&[
            Gauge {
                name: "etcd_server_has_leader",
                help: "Whether or not a leader exists. 1 is existence, 0 is not.",
                value: if node.leader().is_some() { 1.0 } else { 0.0 },
            },
            Gauge {
                name: "etcd_debugging_mvcc_watcher_total",
                help: "Total number of watchers.",
                value: watchers as f64,
            },
            Gauge {
                name: "etcd_debugging_mvcc_slow_watcher_total",
                help: "Total number of unsynced slow watchers.",
                value: (watchers - synced) as f64,
            },
            Gauge {
                name: "etcd_debugging_mvcc_watch_stream_total",
                help: "Total number of watch streams.",
                value: watch.open_streams() as f64,
            },
        ])
    })
}

/// The gateway's bidirectional streams: `/v3/watch` and `/v3/lease/keepalive`.
fn streaming_routes(
    config: gateway::GatewayConfig,
    watch: WatchService,
    lease: LeaseService,
) -> axum::Router {
    let r = gateway::bidi_route(axum::Router::new(), config, "/watch", move |inbound| {
        watch.serve_stream(inbound)
    });
    gateway::bidi_route(r, config, "/lease/keepalive", move |inbound| {
        lease.serve_keep_alive(inbound)
    })
}

/// etcd's `/health`: a leader exists and a linearizable read of one key succeeds in time.
async fn health_check(node: &Node) -> Result<(), String> {
    if node.leader().is_none() {
        return Err("RAFT NO LEADER".into());
    }
    let read = async {
        node.read_barrier().await.map_err(|e| e.to_string())?;
        let view = node.read().map_err(|e| e.to_string())?;
        view.range(&RangeRequest {
            key: b"health".to_vec(),
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
        Ok::<(), String>(())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .map_err(|_| "timeout".to_string())?
}
