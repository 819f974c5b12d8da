//! Who may hold a pre-authentication slot on the peer port.
//!
//! Until its TLS handshake and hello are done a connection is anonymous, yet it holds a
//! socket and a task. Without limits anyone who can reach the port could hold every slot
//! and keep a restarting member from reconnecting. So: connections from a current member's
//! address (as written in the ledger's member infos) get a reserve of their own; the
//! shared pool is bounded per source address (an IPv6 source counts by its /64); and when
//! the shared pool is full, a newcomer from a source holding fewer slots than the heaviest
//! non-member source evicts that source's oldest pending handshake. Addresses are not
//! authentication: this decides only who waits, never who is trusted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::oneshot;

/// Pending handshakes shared by every source.
pub const SHARED_PENDING: usize = 64;
/// Pending handshakes reserved for sources that are a current member's address.
pub const MEMBER_RESERVE: usize = 32;
/// Pending handshakes one source may hold in the shared pool.
pub const PER_SOURCE_PENDING: usize = 4;

/// The IP addresses of the current members' `peer_addr`s. Cheap to clone; shared between
/// the ledger hook that updates it and the peer server that reads it.
#[derive(Clone, Default)]
pub struct MemberSources {
    inner: Arc<RwLock<Sources>>,
}

#[derive(Default)]
struct Sources {
    addrs: Vec<String>,
    ips: HashSet<IpAddr>,
    generation: u64,
}

impl MemberSources {
    /// Points the set at these `host:port` addresses. Literal IPs take effect at once;
    /// host names are resolved in the background (when called inside a tokio runtime).
    pub fn set_addresses(&self, addrs: impl IntoIterator<Item = String>) {
        let mut addrs: Vec<String> = addrs.into_iter().collect();
        addrs.sort();
        addrs.dedup();
        let mut sources = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if sources.addrs == addrs {
            return;
        }
        sources.generation += 1;
        sources.ips.clear();
        let mut names = Vec::new();
        for addr in &addrs {
            match addr.parse::<SocketAddr>() {
                Ok(a) => {
                    sources.ips.insert(a.ip().to_canonical());
                }
                Err(_) => names.push(addr.clone()),
            }
        }
        sources.addrs = addrs;
        let generation = sources.generation;
        drop(sources);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for name in names {
            let inner = self.inner.clone();
            runtime.spawn(async move {
                let Ok(found) = tokio::net::lookup_host(name.as_str()).await else {
                    return;
                };
                let mut sources = inner.write().unwrap_or_else(|e| e.into_inner());
                if sources.generation == generation {
                    sources.ips.extend(found.map(|a| a.ip().to_canonical()));
                }
            });
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let sources = self.inner.read().unwrap_or_else(|e| e.into_inner());
        sources.ips.contains(&ip.to_canonical())
    }
}

/// Why a connection got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    PerSource,
    Full,
}

impl Refused {
    /// The phrase counted in the refusal summary.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::PerSource => "over the per-source limit",
            Refused::Full => "with every pending slot taken",
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::PerSource => write!(
                f,
                "its source already has {PER_SOURCE_PENDING} handshakes pending"
            ),
            Refused::Full => write!(f, "all {SHARED_PENDING} shared handshake slots are taken"),
        }
    }
}

/// The pre-authentication slots of one peer server.
pub struct Admission {
    members: MemberSources,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    reserved: usize,
    /// Shared-pool slots, oldest first.
    shared: BTreeMap<u64, Slot>,
    per_source: HashMap<IpAddr, usize>,
}

struct Slot {
    source: IpAddr,
    member: bool,
    /// Dropped to evict: the holder's receiver then completes.
    _evict: oneshot::Sender<()>,
}

impl State {
    fn remove(&mut self, id: u64) {
        if let Some(slot) = self.shared.remove(&id) {
            if let Some(n) = self.per_source.get_mut(&slot.source) {
                *n -= 1;
                if *n == 0 {
                    self.per_source.remove(&slot.source);
                }
            }
        }
    }

    /// The oldest slot among those of the non-member sources holding the most shared
    /// slots, with that source's count.
    fn victim(&self) -> Option<(u64, usize)> {
        self.shared
            .iter()
            .filter(|(_, s)| !s.member)
            .map(|(id, s)| (*id, self.per_source.get(&s.source).copied().unwrap_or(0)))
            .min_by_key(|(_, n)| std::cmp::Reverse(*n))
    }
}

/// A connection's count of sources: one IPv4 address, or one IPv6 /64 (what one
/// subscriber usually gets).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

impl Admission {
    pub fn new(members: MemberSources) -> Arc<Self> {
        Arc::new(Self {
            members,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for a connection from `ip`, evicting another pending handshake if this
    /// source deserves the room more.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refused> {
        let member = self.members.contains(ip);
        let source = source_key(ip);
        let mut state = self.lock();
        if member && state.reserved < MEMBER_RESERVE {
            state.reserved += 1;
            return Ok(Ticket {
                admission: self.clone(),
                kind: Kind::Reserved,
                evicted: None,
            });
        }
        let mine = state.per_source.get(&source).copied().unwrap_or(0);
        if mine >= PER_SOURCE_PENDING {
            return Err(Refused::PerSource);
        }
        if state.shared.len() >= SHARED_PENDING {
            match state.victim() {
                Some((id, theirs)) if member || theirs > mine => state.remove(id),
                _ => return Err(Refused::Full),
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        let (tx, rx) = oneshot::channel();
        state.shared.insert(
            id,
            Slot {
                source,
                member,
                _evict: tx,
            },
        );
        *state.per_source.entry(source).or_insert(0) += 1;
        Ok(Ticket {
            admission: self.clone(),
            kind: Kind::Shared(id),
            evicted: Some(rx),
        })
    }

    #[cfg(test)]
    fn pending(&self) -> (usize, usize) {
        let state = self.lock();
        (state.reserved, state.shared.len())
    }
}

/// A pending handshake's slot, given back when dropped.
pub struct Ticket {
    admission: Arc<Admission>,
    kind: Kind,
    evicted: Option<oneshot::Receiver<()>>,
}

enum Kind {
    Reserved,
    Shared(u64),
}

impl Ticket {
    /// Completes when another connection took this slot (never for a reserved slot).
    pub async fn evicted(&mut self) {
        match &mut self.evicted {
            Some(rx) => {
                let _ = rx.await;
            }
            None => std::future::pending().await,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.admission.lock();
        match self.kind {
            Kind::Reserved => state.reserved -= 1,
            Kind::Shared(id) => state.remove(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn admission(members: &[&str]) -> Arc<Admission> {
        let sources = MemberSources::default();
        sources.set_addresses(members.iter().map(|m| m.to_string()));
        Admission::new(sources)
    }

    #[test]
    fn one_source_is_held_to_its_share() {
        let a = admission(&[]);
        let held: Vec<_> = (0..PER_SOURCE_PENDING)
            .map(|_| a.admit(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(a.admit(ip("10.0.0.1")).err(), Some(Refused::PerSource));
        // A v6 /64 counts as one source; the v4-mapped form is the v4 address.
        let v6: Vec<_> = (1..=PER_SOURCE_PENDING)
            .map(|i| a.admit(ip(&format!("2001:db8::{i}"))).unwrap())
            .collect();
        assert_eq!(a.admit(ip("2001:db8::ff")).err(), Some(Refused::PerSource));
        assert_eq!(
            a.admit(ip("::ffff:10.0.0.1")).err(),
            Some(Refused::PerSource)
        );
        drop(held);
        assert!(a.admit(ip("10.0.0.1")).is_ok());
        drop(v6);
        assert_eq!(a.pending(), (0, 0));
    }

    #[test]
    fn members_have_a_reserve_and_evict_strangers_when_it_is_full() {
        let a = admission(&["192.0.2.7:7000"]);
        let mut strangers = Vec::new();
        for i in 0..SHARED_PENDING {
            strangers.push(
                a.admit(ip(&format!("10.0.{}.{}", i / 200, i % 200)))
                    .unwrap(),
            );
        }
        // Every stranger source holds one slot, so a second one from any of them gains
        // nothing by evicting another.
        assert_eq!(a.admit(ip("10.0.0.0")).err(), Some(Refused::Full));
        let members: Vec<_> = (0..MEMBER_RESERVE)
            .map(|_| a.admit(ip("192.0.2.7")).unwrap())
            .collect();
        assert_eq!(a.pending(), (MEMBER_RESERVE, SHARED_PENDING));
        // The reserve is full too: a member evicts the oldest stranger.
        let mut oldest = strangers.remove(0);
        let extra = a.admit(ip("192.0.2.7")).unwrap();
        futures::executor::block_on(oldest.evicted());
        assert_eq!(a.pending(), (MEMBER_RESERVE, SHARED_PENDING));
        drop((oldest, extra, members, strangers));
        assert_eq!(a.pending(), (0, 0));
    }

    #[test]
    fn a_light_source_evicts_the_heaviest_one() {
        let a = admission(&[]);
        let mut held = Vec::new();
        for i in 0..SHARED_PENDING {
            held.push(
                a.admit(ip(&format!("10.1.0.{}", i / PER_SOURCE_PENDING)))
                    .unwrap(),
            );
        }
        let newcomer = a.admit(ip("10.9.9.9")).unwrap();
        futures::executor::block_on(held[0].evicted());
        assert_eq!(a.pending(), (0, SHARED_PENDING));
        drop((held, newcomer));
        assert_eq!(a.pending(), (0, 0));
    }
}
