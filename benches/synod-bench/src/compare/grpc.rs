//! The few etcd v3 calls compare makes itself: the readiness probe (a range, linearizable or
//! not), putting the key the range scenarios read, and compaction + defragmentation for the
//! resources scenario. Each call opens its own connection with a deadline. Never used to
//! measure throughput (the load tools do that); only the restart time is timed with it.

use std::time::Duration;

use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use synod_proto::etcdserverpb::{CompactionRequest, DefragmentRequest, PutRequest, RangeRequest};
use tonic::transport::{Channel, Endpoint};

pub struct Grpc {
    rt: tokio::runtime::Runtime,
}

async fn channel(addr: &str, timeout: Duration) -> Result<Channel, String> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("{addr}: {e}"))?
        .connect_timeout(Duration::from_secs(1).min(timeout))
        .timeout(timeout)
        .connect()
        .await
        .map_err(|e| format!("connect {addr}: {e}"))
}

impl Grpc {
    pub fn new() -> Result<Grpc, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        Ok(Grpc { rt })
    }

    /// One range of key "health" (linearizable: answered only with a leader and a quorum);
    /// returns the store's revision.
    pub fn range(&self, addr: &str, linearizable: bool, timeout: Duration) -> Result<i64, String> {
        self.rt.block_on(async {
            let ch = channel(addr, timeout).await?;
            let req = RangeRequest {
                key: b"health".to_vec(),
                serializable: !linearizable,
                ..Default::default()
            };
            let resp = KvClient::new(ch)
                .range(req)
                .await
                .map_err(|e| format!("range at {addr}: {e}"))?;
            Ok(resp.into_inner().header.map_or(0, |h| h.revision))
        })
    }

    pub fn put(
        &self,
        addr: &str,
        key: &[u8],
        value: &[u8],
        timeout: Duration,
    ) -> Result<(), String> {
        self.rt.block_on(async {
            let ch = channel(addr, timeout).await?;
            let req = PutRequest {
                key: key.to_vec(),
                value: value.to_vec(),
                ..Default::default()
            };
            KvClient::new(ch)
                .put(req)
                .await
                .map_err(|e| format!("put at {addr}: {e}"))?;
            Ok(())
        })
    }

    /// Compacts at the current revision (physical: returns once the compaction is done), then
    /// defragments. Ok(Some(message)) when the server does not implement Defragment.
    pub fn compact_and_defrag(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<Option<String>, String> {
        let rev = self.range(addr, true, timeout)?;
        self.rt.block_on(async {
            let ch = channel(addr, timeout).await?;
            KvClient::new(ch.clone())
                .compact(CompactionRequest {
                    revision: rev,
                    physical: true,
                })
                .await
                .map_err(|e| format!("compact at {addr} (revision {rev}): {e}"))?;
            match MaintenanceClient::new(ch)
                .defragment(DefragmentRequest {})
                .await
            {
                Ok(_) => Ok(None),
                Err(s) if s.code() == tonic::Code::Unimplemented => {
                    Ok(Some(s.message().to_string()))
                }
                Err(s) => Err(format!("defragment at {addr}: {s}")),
            }
        })
    }
}
