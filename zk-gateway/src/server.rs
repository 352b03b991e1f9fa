//! The gateway as a whole: configuration, the shared parts every connection uses (store,
//! watches, sessions, counters), the background tasks (watch dispatcher, lease keeper, reapers)
//! and the accept loop. Owns no protocol logic.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, OnceCell};

use crate::backend::SharedBackend;
use crate::layout::{KeyKind, Layout, NodeKind};
use crate::session::{now_ms, Sessions, TimeoutBounds};
use crate::store::{StoreError, ZkStore};
use crate::txn::Plan;
use crate::watches::{Outgoing, SessionEvent, Watches};

/// Gateway settings (upstream's names in the comments).
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Key prefix of the layout in the store.
    pub prefix: String,
    /// `tickTime`, ms.
    pub tick_ms: i32,
    /// `minSessionTimeout` (default 2 x tick), ms.
    pub min_session_timeout_ms: Option<i32>,
    /// `maxSessionTimeout` (default 20 x tick), ms.
    pub max_session_timeout_ms: Option<i32>,
    /// `jute.maxbuffer`.
    pub max_buffer: usize,
    /// `znode.container.checkIntervalMs`.
    pub container_check_interval: Duration,
    /// `4lw.commands.whitelist` ("*" for all).
    pub four_letter_words: Vec<String>,
    /// `zookeeper.DigestAuthenticationProvider.superDigest` (`super:<digest>`).
    pub super_digest: Option<String>,
    /// What `srvr`/`envi` call this server.
    pub version: String,
}

impl Config {
    pub fn new(listen: SocketAddr) -> Config {
        Config {
            listen,
            prefix: "/zk/".to_string(),
            tick_ms: 2000,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            max_buffer: 0xfffff,
            container_check_interval: Duration::from_secs(60),
            four_letter_words: vec!["*".to_string()],
            super_digest: None,
            version: format!("3.8.0-synod-{}", env!("CARGO_PKG_VERSION")),
        }
    }

    pub fn bounds(&self) -> TimeoutBounds {
        TimeoutBounds {
            min_ms: self.min_session_timeout_ms.unwrap_or(self.tick_ms * 2),
            max_ms: self.max_session_timeout_ms.unwrap_or(self.tick_ms * 20),
        }
    }

    pub fn four_letter_allowed(&self, cmd: &str) -> bool {
        self.four_letter_words.iter().any(|w| w == "*" || w == cmd)
    }
}

/// Counters for the four-letter words.
#[derive(Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub sent: AtomicU64,
    pub connections: AtomicU64,
    pub outstanding: AtomicI64,
    pub latency_total_us: AtomicU64,
    pub latency_count: AtomicU64,
    pub latency_max_us: AtomicU64,
    pub latency_min_us: AtomicU64,
}

impl Counters {
    pub fn record_latency(&self, us: u64) {
        self.latency_total_us.fetch_add(us, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
        let min = self.latency_min_us.load(Ordering::Relaxed);
        if min == 0 || us < min {
            self.latency_min_us.store(us, Ordering::Relaxed);
        }
    }

    pub fn reset(&self) {
        for c in [
            &self.received,
            &self.sent,
            &self.latency_total_us,
            &self.latency_count,
            &self.latency_max_us,
            &self.latency_min_us,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// Everything a connection shares with the others.
pub struct Shared {
    pub config: Config,
    pub store: ZkStore,
    pub watches: Watches,
    pub sessions: Sessions,
    pub counters: Counters,
    pub started: Instant,
    next_conn: AtomicU64,
}

impl Shared {
    pub fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("zk gateway: cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("zk gateway: {0}")]
    Store(#[from] StoreError),
}

/// Binds the listener (fails fast if the port is taken).
pub async fn bind(config: &Config) -> Result<TcpListener, GatewayError> {
    TcpListener::bind(config.listen)
        .await
        .map_err(|source| GatewayError::Listen {
            addr: config.listen,
            source,
        })
}

/// Serves ZooKeeper connections on `listener` until the task is dropped. The gateway writes
/// nothing to the store until it is used: if the store has never seen a gateway, the built-in
/// znodes are created when the first ZooKeeper client connects, so a Synod that only ever
/// serves etcd clients keeps etcd's keyspace and revisions untouched.
pub async fn serve(
    backend: SharedBackend,
    config: Config,
    listener: TcpListener,
) -> Result<(), GatewayError> {
    let shared: Arc<OnceCell<Arc<Shared>>> = Arc::new(OnceCell::new());
    if bootstrapped(&backend, &config).await {
        let s = start(backend.clone(), config.clone()).await;
        let _ = shared.set(s);
    }
    tracing::info!(addr = %config.listen, "serving ZooKeeper clients");
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "zk gateway: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let cell = shared.clone();
        let backend = backend.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let shared = cell.get_or_init(|| start(backend, config)).await.clone();
            crate::connection::run(shared, socket, peer).await;
        });
    }
}

/// Whether the store already holds a gateway's znodes (a read; writes nothing).
async fn bootstrapped(backend: &SharedBackend, config: &Config) -> bool {
    let layout = Layout::new(&config.prefix);
    let req = synod_proto::etcdserverpb::RangeRequest {
        key: layout.node_key(&crate::path::ZnodePath::root(), crate::layout::Part::Data),
        serializable: true,
        count_only: true,
        ..Default::default()
    };
    matches!(backend.range(req).await, Ok(r) if r.count > 0)
}

/// Opens the store (bootstrapping it if new) and starts the background tasks.
async fn start(backend: SharedBackend, config: Config) -> Arc<Shared> {
    // The store may not serve writes yet (no leader elected): keep trying.
    let mut attempts = 0u32;
    let (store, start, sessions, watches, dispatcher, session_rx) = loop {
        let opened = async {
            let store = ZkStore::open(backend.clone(), Layout::new(&config.prefix)).await?;
            let start = store.current_revision().await?;
            let (session_tx, session_rx) = mpsc::unbounded_channel();
            let (watches, dispatcher) = Watches::new(start, session_tx);
            let sessions = Sessions::new(store.clone(), watches.clone()).await?;
            Ok::<_, StoreError>((store, start, sessions, watches, dispatcher, session_rx))
        };
        match opened.await {
            Ok(x) => break x,
            Err(e) => {
                attempts += 1;
                if attempts % 25 == 1 {
                    tracing::warn!(error = %e, "zk gateway: store not ready; retrying");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    tokio::spawn(dispatcher.run(store.clone(), start));
    tokio::spawn(sessions.clone().keep_alive());
    tokio::spawn(session_events(
        sessions.clone(),
        watches.clone(),
        session_rx,
    ));
    tokio::spawn(sweeper(sessions.clone()));
    tokio::spawn(reaper(store.clone(), config.container_check_interval));
    Arc::new(Shared {
        config,
        store,
        watches,
        sessions,
        counters: Counters::default(),
        started: Instant::now(),
        next_conn: AtomicU64::new(0),
    })
}

async fn session_events(
    sessions: Sessions,
    watches: Watches,
    mut rx: mpsc::UnboundedReceiver<SessionEvent>,
) {
    while let Some(ev) = rx.recv().await {
        match ev {
            SessionEvent::Held(id) => sessions.held_elsewhere(id).await,
            SessionEvent::Gone(id) => {
                if let Some(conn) = sessions.gone(id) {
                    watches.send(conn, Outgoing::Close);
                }
                let s = sessions.clone();
                tokio::spawn(async move {
                    if let Err(e) = s.reap(id, false).await {
                        tracing::warn!(error = %e, session = id, "zk gateway: reaping failed");
                    }
                });
            }
        }
    }
}

async fn sweeper(sessions: Sessions) {
    loop {
        if let Err(e) = sessions.sweep().await {
            tracing::warn!(error = %e, "zk gateway: session sweep failed");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// Deletes empty containers that had children, and TTL nodes that are empty and unmodified for
/// longer than their TTL (upstream's `ContainerManager`).
async fn reaper(store: ZkStore, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let keys = match store.keys(store.layout().timed_range()).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "zk gateway: container scan failed");
                continue;
            }
        };
        for k in keys {
            let KeyKind::Timed(path) = k else { continue };
            let mut plan = Plan::new(&store, 0, now_ms());
            let n = match plan.node(&path).await {
                Ok(Some(n)) => n,
                Ok(None) => {
                    // the node went some other way; drop its stale index entry
                    let key = store.layout().timed_key(&path);
                    let _ = store.commit(vec![], vec![crate::store::delete(key)]).await;
                    continue;
                }
                Err(_) => continue,
            };
            let due = n.children.count == 0
                && match n.data.kind {
                    NodeKind::Container => n.children.creates > 0,
                    NodeKind::Ttl => now_ms() - n.data.mtime > n.data.ttl,
                    _ => false,
                };
            if due && plan.delete(path.as_str(), -1, None).await.is_ok() {
                let _ = plan.commit().await;
            }
        }
    }
}
