//! The gRPC connections of an etcd run: `--conns` tonic Channels (one HTTP/2 connection each)
//! over the endpoints round-robin, all connected before the clock starts.
//!
//! It owns the endpoint syntax and the connect step, so that "cannot connect" is found (and
//! is fatal) before any request is timed. It must never add retries or balancing of its own:
//! each client stays on its one channel, as etcd's benchmark tool's clients do.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `host:port` means `http://host:port`; TLS is not supported (no TLS in this build of tonic).
pub fn normalize(endpoint: &str) -> Result<String, String> {
    let e = endpoint.trim();
    if e.is_empty() {
        return Err("an empty endpoint in --endpoints".into());
    }
    if e.starts_with("https://") {
        return Err(format!("{e}: TLS endpoints are not supported"));
    }
    if e.starts_with("http://") {
        Ok(e.to_string())
    } else if e.contains("://") {
        Err(format!("{e}: only http:// endpoints are supported"))
    } else {
        Ok(format!("http://{e}"))
    }
}

/// Connects `conns` channels, channel `j` to `endpoints[j % len]`, all at once.
pub async fn connect(endpoints: &[String], conns: u32) -> Result<Vec<Channel>, String> {
    let mut attempts = Vec::with_capacity(conns as usize);
    for j in 0..conns as usize {
        let url = endpoints[j % endpoints.len()].clone();
        let ep = Endpoint::from_shared(url.clone())
            .map_err(|e| format!("{url}: not a valid endpoint: {e}"))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        attempts.push(async move {
            ep.connect()
                .await
                .map_err(|e| format!("cannot connect to {url}: {}", source_chain(&e)))
        });
    }
    futures::future::try_join_all(attempts).await
}

/// An error with its causes (tonic's transport error alone says just "transport error").
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            normalize("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(normalize("http://h:1").unwrap(), "http://h:1");
        assert!(normalize("https://h:1").is_err());
        assert!(normalize("unix://x").is_err());
        assert!(normalize(" ").is_err());
    }
}
