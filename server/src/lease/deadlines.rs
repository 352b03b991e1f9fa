//! Lease deadlines as pure data: the primary lessor's expiry instants, or a follower's shadows
//! (its estimate of them), with the expiry queue and the arithmetic of TTLs and instants.
//!
//! Every method takes the current instant, so everything here is deterministic and tested
//! without clocks. It knows nothing of Raft, the store or clients; the lessor (`lessor.rs`)
//! decides when to call what.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use synod_mvcc::LeaseRecord;

/// etcd's minimum lease TTL in seconds: `ceil(((3 * electionTicks) / 2) * heartbeat)`, with
/// `electionTicks = election / heartbeat`. With etcd's defaults (100 ms, 1000 ms) it is 2.
pub fn min_lease_ttl(heartbeat: Duration, election: Duration) -> i64 {
    let heartbeat_ms = heartbeat.as_millis().max(1);
    let election_ticks = election.as_millis() / heartbeat_ms;
    let min_ms = (3 * election_ticks / 2) * heartbeat_ms;
    i64::try_from(min_ms.div_ceil(1000)).unwrap_or(i64::MAX)
}

/// `now + secs`, saturating far in the future instead of overflowing.
pub(super) fn after(now: Instant, secs: i64) -> Instant {
    let secs = u64::try_from(secs).unwrap_or(0);
    now.checked_add(Duration::from_secs(secs))
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}

/// Whole seconds left, rounded up (etcd's checkpoint `math.Ceil`): a checkpoint never makes a
/// lease shorter than the leader's deadline.
pub(super) fn remaining_secs_ceil(expiry: Instant, now: Instant) -> i64 {
    let left = expiry.saturating_duration_since(now);
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// etcd's `int64(lease.Remaining().Seconds())`: whole seconds left, truncated toward zero
/// (negative once the deadline has passed by a second or more).
pub(super) fn remaining_secs(expiry: Instant, now: Instant) -> i64 {
    if expiry >= now {
        i64::try_from((expiry - now).as_secs()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from((now - expiry).as_secs()).unwrap_or(i64::MAX)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Deadline {
    /// Granted TTL in seconds (raised to the minimum).
    pub(super) ttl: i64,
    pub(super) expiry: Instant,
    /// When the expiry queue looks at this lease next (its `queue` entry).
    pub(super) check_at: Instant,
}

/// The primary's deadlines, or a follower's shadows. Pure data: every method takes the
/// current instant.
#[derive(Debug, Default)]
pub(super) struct Deadlines {
    /// The term this member was promoted in; `None` when not the primary lessor.
    pub(super) primary_term: Option<u64>,
    /// Primary only: every granted lease's deadline, which decides its expiry.
    pub(super) leases: HashMap<i64, Deadline>,
    /// Primary only: `(check_at, id)` of every lease, soonest first.
    pub(super) queue: BTreeSet<(Instant, i64)>,
    /// Primary only: leases to put in the next checkpoint (renewed since the last one).
    pub(super) to_checkpoint: HashSet<i64>,
    /// Not primary: this member's estimate of each lease's expiry. A lease may have none (it
    /// was granted before this member started and not checkpointed since).
    pub(super) shadows: HashMap<i64, Instant>,
}

impl Deadlines {
    pub(super) fn set(&mut self, id: i64, ttl: i64, expiry: Instant) {
        self.remove(id);
        self.leases.insert(
            id,
            Deadline {
                ttl,
                expiry,
                check_at: expiry,
            },
        );
        self.queue.insert((expiry, id));
    }

    pub(super) fn remove(&mut self, id: i64) -> bool {
        match self.leases.remove(&id) {
            Some(d) => {
                self.queue.remove(&(d.check_at, id));
                true
            }
            None => false,
        }
    }

    /// Restarts lease `id`'s full TTL; its granted TTL, or `None` if unknown. The renewal goes
    /// into the next checkpoint.
    pub(super) fn renew(&mut self, id: i64, now: Instant) -> Option<i64> {
        let ttl = self.leases.get(&id)?.ttl;
        self.set(id, ttl, after(now, ttl));
        self.to_checkpoint.insert(id);
        Some(ttl)
    }

    /// A grant was applied at `now`.
    pub(super) fn granted(&mut self, id: i64, ttl: i64, now: Instant) {
        if self.primary_term.is_some() {
            self.set(id, ttl, after(now, ttl));
        } else {
            self.shadows.insert(id, after(now, ttl));
        }
    }

    /// A revocation was applied.
    pub(super) fn revoked(&mut self, id: i64) {
        self.remove(id);
        self.to_checkpoint.remove(&id);
        self.shadows.remove(&id);
    }

    /// A checkpoint of lease `id` was applied at `now`. The primary ignores it: its deadline
    /// is exact, the checkpoint at best a rounded copy of an older one.
    pub(super) fn checkpointed(&mut self, id: i64, remaining_ttl: i64, now: Instant) {
        if self.primary_term.is_some() {
            return;
        }
        if remaining_ttl > 0 {
            self.shadows.insert(id, after(now, remaining_ttl));
        } else {
            // "Unset": the full TTL from now, which promotion reads from the store.
            self.shadows.remove(&id);
        }
    }

    /// Up to `limit` leases whose deadline has passed, each rescheduled `retry` from now so it
    /// is proposed again only if its revocation has not been applied by then.
    pub(super) fn take_expired(&mut self, now: Instant, limit: usize, retry: Duration) -> Vec<i64> {
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(&(at, id)) = self.queue.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.queue.remove(&(at, id));
            let Some(d) = self.leases.get_mut(&id) else {
                continue;
            };
            d.check_at = if d.expiry > now {
                d.expiry
            } else {
                out.push(id);
                now.checked_add(retry).unwrap_or(now)
            };
            self.queue.insert((d.check_at, id));
        }
        out
    }

    /// Takes the leases due for a checkpoint as `(id, remaining TTL in seconds)`, in id order.
    /// Expired leases are left out: they are being revoked.
    pub(super) fn take_checkpoints(&mut self, now: Instant) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = self
            .to_checkpoint
            .drain()
            .filter_map(|id| self.leases.get(&id).map(|d| (id, d.expiry)))
            .filter(|&(_, expiry)| expiry > now)
            .map(|(id, expiry)| (id, remaining_secs_ceil(expiry, now)))
            .collect();
        out.sort_unstable();
        out
    }

    /// Puts `ids` back for the next checkpoint after a failed proposal, if this member is
    /// still the primary of `term`.
    pub(super) fn requeue(&mut self, term: u64, ids: impl IntoIterator<Item = i64>) {
        if self.primary_term != Some(term) {
            return;
        }
        for id in ids {
            if self.leases.contains_key(&id) {
                self.to_checkpoint.insert(id);
            }
        }
    }

    /// Puts every lease in the next checkpoint (primary only).
    pub(super) fn checkpoint_all(&mut self) {
        if self.primary_term.is_some() {
            self.to_checkpoint.extend(self.leases.keys().copied());
        }
    }

    /// Becomes the primary lessor for `term` with `leases` from the store (granted TTLs
    /// already raised to the minimum). A lease with a shadow expires `extend` after its
    /// shadow, or after `now` if that has passed; one without (granted before this member
    /// started, never checkpointed since) resumes its persisted remaining TTL from `now`.
    /// Returns how many leases had a shadow.
    pub(super) fn promote(
        &mut self,
        term: u64,
        leases: &[LeaseRecord],
        now: Instant,
        extend: Duration,
    ) -> usize {
        self.demote();
        let shadows = std::mem::take(&mut self.shadows);
        self.primary_term = Some(term);
        let base = now.checked_add(extend).unwrap_or(now);
        let mut estimated = 0;
        for r in leases {
            let expiry = match shadows.get(&r.id) {
                Some(&shadow) => {
                    estimated += 1;
                    let from = shadow.max(now);
                    from.checked_add(extend).unwrap_or(from)
                }
                None => after(base, r.remaining_or_ttl()),
            };
            self.set(r.id, r.ttl, expiry);
        }
        estimated
    }

    /// Stops being the primary lessor: the deadlines become the shadows (this member may lead
    /// again, and until a new leader checkpoints, they are the best estimate it has).
    pub(super) fn demote(&mut self) {
        if self.primary_term.take().is_some() {
            self.shadows = self.leases.drain().map(|(id, d)| (id, d.expiry)).collect();
        }
        self.leases.clear();
        self.queue.clear();
        self.to_checkpoint.clear();
    }

    /// Forgets everything (the store was replaced by a snapshot): promotion falls back to the
    /// persisted remaining TTLs.
    pub(super) fn reset(&mut self) {
        *self = Deadlines::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_ttl_matches_etcd_defaults() {
        let ms = Duration::from_millis;
        // etcd defaults: heartbeat 100 ms, election 1000 ms -> 1.5 s -> 2 s.
        assert_eq!(min_lease_ttl(ms(100), ms(1000)), 2);
        // 3 * 5 / 2 = 7 ticks (integer division) * 200 ms = 1.4 s -> 2 s.
        assert_eq!(min_lease_ttl(ms(200), ms(1000)), 2);
        assert_eq!(min_lease_ttl(ms(100), ms(2000)), 3);
        assert_eq!(min_lease_ttl(ms(0), ms(0)), 0);
    }

    #[test]
    fn remaining_truncates_toward_zero() {
        let now = Instant::now();
        let s = Duration::from_millis;
        assert_eq!(remaining_secs(now + s(9_900), now), 9);
        assert_eq!(remaining_secs(now, now + s(500)), 0);
        assert_eq!(remaining_secs(now, now + s(1_500)), -1);
    }

    #[test]
    fn huge_ttls_do_not_overflow() {
        let now = Instant::now();
        assert!(after(now, super::super::MAX_LEASE_TTL) > now);
        assert_eq!(after(now, -5), now);
    }

    #[test]
    fn expired_leases_are_taken_in_deadline_order_and_bounded() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.set(1, 5, t0 + s(5));
        d.set(2, 3, t0 + s(3));
        d.set(3, 10, t0 + s(10));
        d.set(4, 4, t0 + s(4));
        assert!(d.take_expired(t0 + s(2), 10, s(7)).is_empty());
        assert_eq!(d.take_expired(t0 + s(6), 2, s(7)), vec![2, 4]);
        assert_eq!(d.take_expired(t0 + s(6), 2, s(7)), vec![1]);
        // Taken leases come back only after the retry interval.
        assert!(d.take_expired(t0 + s(12), 10, s(7)).contains(&3));
        // All three were taken at 6 s, so all are due again at 13 s (ties in id order).
        assert_eq!(d.take_expired(t0 + s(13), 10, s(7)), vec![1, 2, 4]);
        assert_eq!(d.queue.len(), d.leases.len());
    }

    #[test]
    fn renewing_moves_the_deadline_and_revoking_forgets_it() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.set(1, 5, t0 + s(5));
        assert_eq!(d.renew(1, t0 + s(4)), Some(5));
        assert!(d.take_expired(t0 + s(6), 10, s(7)).is_empty());
        assert_eq!(d.take_expired(t0 + s(9), 10, s(7)), vec![1]);
        // A renewal after being taken (revoke in flight) reschedules it again.
        assert_eq!(d.renew(1, t0 + s(9)), Some(5));
        assert!(d.take_expired(t0 + s(13), 10, s(7)).is_empty());
        assert!(d.remove(1));
        assert!(!d.remove(1));
        assert_eq!(d.renew(1, t0), None);
        assert!(d.queue.is_empty());
    }

    fn rec(id: i64, ttl: i64, remaining_ttl: Option<i64>) -> LeaseRecord {
        LeaseRecord {
            id,
            ttl,
            remaining_ttl,
        }
    }

    fn expiry(d: &Deadlines, id: i64) -> Instant {
        d.leases[&id].expiry
    }

    #[test]
    fn remaining_for_checkpoints_rounds_up() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(remaining_secs_ceil(now + ms(9_100), now), 10);
        assert_eq!(remaining_secs_ceil(now + ms(9_000), now), 9);
        assert_eq!(remaining_secs_ceil(now, now + ms(500)), 0);
    }

    #[test]
    fn followers_shadow_grants_and_revocations() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.granted(1, 60, t0);
        d.granted(2, 10, t0 + s(1));
        assert_eq!(d.shadows[&1], t0 + s(60));
        assert_eq!(d.shadows[&2], t0 + s(11));
        // Nothing authoritative on a follower: no deadline, nothing to expire or checkpoint.
        assert!(d.leases.is_empty() && d.queue.is_empty());
        assert!(d.take_expired(t0 + s(100), 10, s(1)).is_empty());
        assert_eq!(d.renew(1, t0), None);
        assert!(d.take_checkpoints(t0).is_empty());
        d.revoked(1);
        assert!(!d.shadows.contains_key(&1));
    }

    #[test]
    fn promotion_resumes_from_shadows_or_the_persisted_remaining_ttl() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.granted(1, 60, t0);
        d.granted(2, 5, t0);
        d.granted(9, 5, t0); // revoked meanwhile: not in the store any more
                             // Promoted 10 s after the grants, with a one-second election timeout.
        let now = t0 + s(10);
        let store = [
            rec(1, 60, None),
            // Its shadow has passed: it gets the extension from now.
            rec(2, 5, None),
            // No shadow (granted before this member started): its persisted remaining TTL.
            rec(3, 30, Some(20)),
            // No shadow, never checkpointed: its full TTL.
            rec(4, 30, None),
        ];
        assert_eq!(d.promote(7, &store, now, s(1)), 2);
        assert_eq!(d.primary_term, Some(7));
        assert_eq!(expiry(&d, 1), t0 + s(61));
        assert_eq!(expiry(&d, 2), now + s(1));
        assert_eq!(expiry(&d, 3), now + s(21));
        assert_eq!(expiry(&d, 4), now + s(31));
        assert_eq!(d.leases.len(), 4);
        assert_eq!(d.queue.len(), 4);
        assert!(d.shadows.is_empty());
        // The granted TTL is still what a renewal restarts.
        assert_eq!(d.renew(3, now), Some(30));
        assert_eq!(expiry(&d, 3), now + s(30));
    }

    #[test]
    fn checkpoints_move_shadows_but_not_the_primary_deadlines() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.granted(1, 60, t0);
        // The leader renewed it and checkpointed 58 s left; applied here at t0 + 30.
        d.checkpointed(1, 58, t0 + s(30));
        assert_eq!(d.shadows[&1], t0 + s(88));
        // A lease without a shadow (this member restarted) gets one.
        d.checkpointed(2, 15, t0 + s(30));
        assert_eq!(d.shadows[&2], t0 + s(45));
        // "Unset": dropped, so promotion uses the store's value (the full TTL).
        d.checkpointed(2, 0, t0 + s(31));
        assert!(!d.shadows.contains_key(&2));
        d.promote(
            3,
            &[rec(1, 60, Some(58)), rec(2, 20, None)],
            t0 + s(40),
            s(1),
        );
        assert_eq!(expiry(&d, 1), t0 + s(89));
        assert_eq!(expiry(&d, 2), t0 + s(61));
        // On the primary its own (older) checkpoint changes nothing.
        d.renew(1, t0 + s(41));
        d.checkpointed(1, 55, t0 + s(42));
        assert_eq!(expiry(&d, 1), t0 + s(101));
        assert!(d.shadows.is_empty());
    }

    #[test]
    fn renewals_are_checkpointed_once_with_their_remaining_ttl() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        let mut d = Deadlines::default();
        d.promote(
            2,
            &[rec(1, 10, None), rec(2, 20, None), rec(3, 5, None)],
            t0,
            s(1),
        );
        // Nothing renewed, nothing to checkpoint.
        assert!(d.take_checkpoints(t0).is_empty());
        d.renew(2, t0 + s(1));
        d.renew(1, t0 + s(1));
        d.renew(1, t0 + s(2));
        d.renew(3, t0 + s(2));
        // Lease 3 expires before the checkpoint: it is being revoked, not checkpointed.
        let now = t0 + s(7) + ms(300);
        assert_eq!(d.take_checkpoints(now), vec![(1, 5), (2, 14)]);
        assert!(d.take_checkpoints(now).is_empty());
        // A failed proposal puts them back, unless the term is over or the lease is gone.
        d.requeue(2, [1, 2, 42]);
        d.requeue(3, [3]);
        assert_eq!(d.take_checkpoints(now), vec![(1, 5), (2, 14)]);
        // Revoked leases leave the next checkpoint.
        d.renew(2, now);
        d.revoked(2);
        assert!(d.take_checkpoints(now).is_empty());
        // The periodic full checkpoint takes every lease.
        d.checkpoint_all();
        assert_eq!(d.take_checkpoints(t0 + s(3)), vec![(1, 9), (3, 4)]);
    }

    #[test]
    fn demotion_keeps_the_deadlines_as_shadows() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.promote(3, &[rec(1, 10, None), rec(2, 20, None)], t0, s(1));
        d.renew(1, t0 + s(5));
        d.demote();
        assert_eq!(d.primary_term, None);
        assert!(d.leases.is_empty() && d.queue.is_empty() && d.to_checkpoint.is_empty());
        assert_eq!(d.shadows.len(), 2);
        assert_eq!(d.shadows[&1], t0 + s(15));
        assert_eq!(d.shadows[&2], t0 + s(21));
        // Not primary any more: a grant is only estimated, a renewal is refused.
        d.granted(3, 30, t0 + s(6));
        assert!(d.leases.is_empty());
        assert_eq!(d.renew(1, t0 + s(6)), None);
        // Leading again later: each lease resumes from its estimate.
        let now = t0 + s(18);
        d.promote(
            5,
            &[rec(1, 10, None), rec(2, 20, None), rec(3, 30, None)],
            now,
            s(1),
        );
        assert_eq!(expiry(&d, 1), now + s(1));
        assert_eq!(expiry(&d, 2), t0 + s(22));
        assert_eq!(expiry(&d, 3), t0 + s(37));
        // A snapshot install forgets everything.
        d.reset();
        assert_eq!(d.primary_term, None);
        assert!(d.leases.is_empty() && d.shadows.is_empty() && d.queue.is_empty());
    }
}
