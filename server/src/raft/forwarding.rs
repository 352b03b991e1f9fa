//! Client writes a follower forwards to the leader, over one long-lived stream per leader.
//!
//! A unary gRPC call per forwarded write cost more than the write itself: HTTP/2 headers both
//! ways and a new stream per call, on both members. Measured on 2 cores, a 3-member cluster
//! whose clients all reached followers took 9.1k puts/s, against 14.0k when they all reached
//! the leader. Here a follower keeps one `ForwardStream` per leader: writes go out in batches of
//! whatever is queued, each under an id unique on the stream, and the leader's answers come back
//! batched the same way, matched by id, in the order the writes are applied.
//!
//! Both ends of the stream live here: [`ForwardStreams`] (the follower's) and [`serve`] (the
//! leader's). This module decides nothing: the leader proposes a forwarded write exactly as it
//! would one of its own clients', and a broken stream only fails the writes still waiting on
//! it, as a failed unary call did ([`PeerError::Unreachable`]); whether to retry is the
//! caller's decision.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::stream::{BoxStream, FuturesUnordered, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use synod_proto::peerpb::peer_client::PeerClient;
use synod_proto::peerpb::{ForwardedResult, ForwardedResults, ForwardedWrite, ForwardedWrites};
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use super::network::{decode, encode, PeerError};
use super::peer_service::LeaderDuties;
use super::{Applied, Command, MemberNode, Raft};

/// A batch stops growing at this many bytes of payload (it always takes at least one item).
const MAX_BATCH_BYTES: usize = 4 << 20;

/// The leader's answer to one forwarded write (postcard-encoded in `ForwardedResult.result`).
#[derive(Debug, Serialize, Deserialize)]
enum Forwarded {
    /// Proposed and applied: the state machine's answer.
    Applied(Applied),
    /// Raft refused the proposal (this member does not lead, or stopped leading): its text.
    Refused(String),
    /// The leader's upper layers could not complete the write before proposing it.
    Unavailable(String),
    /// The command did not decode.
    Undecodable(String),
}

/// The writes waiting for an answer on one stream. Once `closed`, nothing more is added: a
/// writer that finds it closed fails at once instead of waiting for an answer that cannot come.
#[derive(Default)]
struct Waiting {
    closed: bool,
    answers: HashMap<u64, oneshot::Sender<Forwarded>>,
}

/// A follower's stream to one leader.
struct LeaderStream {
    to_leader: mpsc::UnboundedSender<ForwardedWrite>,
    waiting: Mutex<Waiting>,
}

impl LeaderStream {
    fn waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.waiting().closed
    }

    fn answer(&self, result: ForwardedResult) {
        let Some(tx) = self.waiting().answers.remove(&result.id) else {
            return;
        };
        let answer = decode(&result.result)
            .unwrap_or_else(|e| Forwarded::Undecodable(format!("leader's answer: {e}")));
        // The writer may have given up (its client went away): nobody to tell.
        let _ = tx.send(answer);
    }

    /// Fails every write still waiting (their senders drop) and refuses new ones.
    fn close(&self) {
        let mut waiting = self.waiting();
        waiting.closed = true;
        waiting.answers.clear();
    }
}

/// A follower's forwarding streams, one per leader peer URL, opened on first use and reopened
/// after they break.
#[derive(Default)]
pub struct ForwardStreams {
    streams: Mutex<HashMap<String, Arc<LeaderStream>>>,
    next_id: AtomicU64,
}

impl ForwardStreams {
    /// Sends `cmd` to `leader` (reached with `client`, for its peer URL `url`) and waits for
    /// the answer.
    pub async fn forward(
        &self,
        leader: &MemberNode,
        url: &str,
        client: impl FnOnce() -> Result<PeerClient<Channel>, PeerError>,
        cmd: &Command,
    ) -> Result<Applied, PeerError> {
        let command = encode(cmd)?;
        let stream = self.stream(url, client)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let closed =
            || PeerError::Unreachable(leader.name.clone(), "forwarding stream closed".into());
        {
            let mut waiting = stream.waiting();
            if waiting.closed {
                return Err(closed());
            }
            waiting.answers.insert(id, tx);
        }
        if stream
            .to_leader
            .send(ForwardedWrite { id, command })
            .is_err()
        {
            stream.waiting().answers.remove(&id);
            return Err(closed());
        }
        match rx.await {
            Ok(Forwarded::Applied(applied)) => Ok(applied),
            Ok(Forwarded::Refused(text)) => Err(PeerError::Remote(text)),
            Ok(Forwarded::Unavailable(text)) => {
                Err(PeerError::Unreachable(leader.name.clone(), text))
            }
            Ok(Forwarded::Undecodable(text)) => Err(PeerError::Decode(text)),
            Err(_) => Err(closed()),
        }
    }

    /// The open stream to `url`, opening one if there is none or the last one broke.
    fn stream(
        &self,
        url: &str,
        client: impl FnOnce() -> Result<PeerClient<Channel>, PeerError>,
    ) -> Result<Arc<LeaderStream>, PeerError> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = streams.get(url) {
            if !s.is_closed() {
                return Ok(s.clone());
            }
        }
        let stream = open(client()?);
        streams.insert(url.to_string(), stream.clone());
        Ok(stream)
    }
}

/// Opens a stream on `client`; a task reads the answers until the stream ends or breaks, then
/// closes it.
fn open(mut client: PeerClient<Channel>) -> Arc<LeaderStream> {
    let (to_leader, queued) = mpsc::unbounded_channel();
    let stream = Arc::new(LeaderStream {
        to_leader,
        waiting: Mutex::new(Waiting::default()),
    });
    let reader = stream.clone();
    let outgoing = batches(queued, |w: &ForwardedWrite| w.command.len())
        .map(|writes| ForwardedWrites { writes });
    tokio::spawn(async move {
        match client.forward_stream(outgoing).await {
            Ok(resp) => {
                let mut answers = resp.into_inner();
                loop {
                    match answers.message().await {
                        Ok(Some(batch)) => batch.results.into_iter().for_each(|r| reader.answer(r)),
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "forwarding stream broke");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "forwarding stream not opened"),
        }
        reader.close();
    });
    stream
}

/// The leader's end of one follower's stream: proposes every write as it arrives and answers
/// each as soon as it is applied. When the follower's side ends, writes not yet answered are
/// dropped (those already proposed still apply; the follower has failed them).
pub fn serve(
    raft: Raft,
    duties: Arc<dyn LeaderDuties>,
    mut inbound: Streaming<ForwardedWrites>,
) -> BoxStream<'static, Result<ForwardedResults, Status>> {
    let (answers, queued) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut proposals = FuturesUnordered::new();
        loop {
            tokio::select! {
                batch = inbound.message() => match batch {
                    Ok(Some(batch)) => {
                        for w in batch.writes {
                            proposals.push(propose(raft.clone(), duties.clone(), w));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "follower's forwarding stream broke");
                        break;
                    }
                },
                Some(answer) = proposals.next(), if !proposals.is_empty() => {
                    if answers.send(answer).is_err() {
                        break;
                    }
                }
            }
        }
    });
    batches(queued, |r: &ForwardedResult| r.result.len())
        .map(|results| Ok(ForwardedResults { results }))
        .boxed()
}

async fn propose(raft: Raft, duties: Arc<dyn LeaderDuties>, w: ForwardedWrite) -> ForwardedResult {
    let answer = match decode::<Command>(&w.command) {
        Err(e) => Forwarded::Undecodable(e.to_string()),
        Ok(cmd) => match duties.prepare(cmd) {
            Err(status) => Forwarded::Unavailable(status.message().to_string()),
            Ok(cmd) => match raft.client_write(cmd).await {
                Ok(written) => Forwarded::Applied(written.data),
                Err(e) => Forwarded::Refused(e.to_string()),
            },
        },
    };
    ForwardedResult {
        id: w.id,
        // An answer that cannot be encoded reaches the follower as an undecodable one.
        result: encode(&answer).unwrap_or_default(),
    }
}

/// A queue as a stream of batches: each waits for one item, then takes whatever else is
/// already queued, up to [`MAX_BATCH_BYTES`] of payload as `size` counts it.
fn batches<T: Send + 'static>(
    queue: mpsc::UnboundedReceiver<T>,
    size: fn(&T) -> usize,
) -> impl Stream<Item = Vec<T>> + Send + 'static {
    futures::stream::unfold(queue, move |mut queue| async move {
        let first = queue.recv().await?;
        let mut bytes = size(&first);
        let mut batch = vec![first];
        while bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(item) => {
                    bytes += size(&item);
                    batch.push(item);
                }
                Err(_) => break,
            }
        }
        Some((batch, queue))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_takes_everything_already_queued_and_waits_for_nothing_more() {
        let (tx, rx) = mpsc::unbounded_channel();
        for i in 0..5u8 {
            tx.send(vec![i]).expect("queue open");
        }
        let mut stream = Box::pin(batches(rx, |v: &Vec<u8>| v.len()));
        assert_eq!(
            stream.next().await,
            Some(vec![vec![0], vec![1], vec![2], vec![3], vec![4]])
        );
        tx.send(vec![9]).expect("queue open");
        assert_eq!(stream.next().await, Some(vec![vec![9]]));
        drop(tx);
        assert_eq!(stream.next().await, None);
    }

    #[tokio::test]
    async fn a_batch_stops_growing_at_the_byte_limit_but_always_takes_one_item() {
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(vec![0u8; MAX_BATCH_BYTES + 1]).expect("queue open");
        tx.send(vec![1u8; 10]).expect("queue open");
        tx.send(vec![2u8; MAX_BATCH_BYTES - 1]).expect("queue open");
        tx.send(vec![3u8; 10]).expect("queue open");
        drop(tx);
        let sizes: Vec<Vec<usize>> = batches(rx, |v: &Vec<u8>| v.len())
            .map(|b| b.iter().map(Vec::len).collect())
            .collect()
            .await;
        assert_eq!(
            sizes,
            vec![
                vec![MAX_BATCH_BYTES + 1],
                vec![10, MAX_BATCH_BYTES - 1],
                vec![10]
            ]
        );
    }

    #[test]
    fn a_closed_stream_fails_its_waiting_writes_and_refuses_new_ones() {
        let (to_leader, _queued) = mpsc::unbounded_channel();
        let stream = LeaderStream {
            to_leader,
            waiting: Mutex::new(Waiting::default()),
        };
        let (tx, mut rx) = oneshot::channel();
        stream.waiting().answers.insert(7, tx);
        stream.close();
        assert!(
            matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed)),
            "the waiting write must be failed"
        );
        assert!(stream.is_closed());
        // An answer arriving late for a failed write is dropped, not delivered.
        stream.answer(ForwardedResult {
            id: 7,
            result: Vec::new(),
        });
        assert!(stream.waiting().answers.is_empty());
    }
}
