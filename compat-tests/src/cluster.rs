//! A multi-member cluster of one flavor.

use crate::rt::block_on;
use crate::server::{client_for, Flavor, MemberSpec, Server, Slot};

/// `size` members of one flavor on loopback. Dropping it kills them all.
pub struct Cluster {
    pub members: Vec<Server>,
}

impl Cluster {
    /// Starts `size` members of `flavor` and waits until every one serves
    /// client requests.
    pub fn start(flavor: Flavor, size: usize) -> Cluster {
        Cluster::start_with(MemberSpec::new(flavor), size)
    }

    /// Like [`Cluster::start`], each member started from a copy of `spec`.
    pub fn start_with(spec: MemberSpec, size: usize) -> Cluster {
        assert!(size >= 1, "a cluster needs at least one member");
        let slots: Vec<Slot> = (0..size).map(|i| Slot::new(format!("m{i}"))).collect();
        let initial_cluster = slots
            .iter()
            .map(|s| format!("{}={}", s.name, s.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        // A unique token per cluster so members of different tests can never join up.
        let token = format!("synod-cluster-{}", slots[0].peer_port);
        // Start every member before waiting for any: none is ready without a quorum.
        let mut cluster = Cluster {
            members: slots
                .iter()
                .map(|s| Server::spawn(spec.clone(), s, &initial_cluster, &token))
                .collect(),
        };
        for m in cluster.members.iter_mut() {
            m.wait_ready();
        }
        cluster
    }

    /// `127.0.0.1:PORT` of every member, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint()).collect()
    }

    /// Client URLs of every member, in member order.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Index of the member that reports itself as leader (its Status
    /// `header.member_id == leader`), if exactly that can be found now.
    /// Members that are down or don't answer are skipped.
    pub fn leader_index(&self) -> Option<usize> {
        let urls = self.client_urls();
        block_on(async move {
            for (i, url) in urls.iter().enumerate() {
                let opts = etcd_client::ConnectOptions::new()
                    .with_connect_timeout(std::time::Duration::from_secs(1))
                    .with_timeout(std::time::Duration::from_secs(2));
                let Ok(mut c) = etcd_client::Client::connect([url], Some(opts)).await else {
                    continue;
                };
                if let Ok(st) = c.status().await {
                    let me = st.header().map(|h| h.member_id()).unwrap_or(0);
                    if me != 0 && st.leader() == me {
                        return Some(i);
                    }
                }
            }
            None
        })
    }

    /// An etcd-client connected to every member.
    pub async fn client(&self) -> etcd_client::Client {
        client_for(&self.client_urls()).await
    }
}
