//! The trust set: which member keys may open or accept peer links right now.
//!
//! A [`TrustSet`] is a cheap-clone handle to shared state. The node replaces its contents
//! whenever ledger membership changes; the TLS verifiers consult it on every handshake, so a
//! change is visible to the very next handshake.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use consort_crypto::{MemberId, PublicKey};

/// Shared, live set of trusted member keys with their derived member ids.
#[derive(Clone, Default)]
pub struct TrustSet {
    inner: Arc<RwLock<HashMap<PublicKey, MemberId>>>,
}

impl std::fmt::Debug for TrustSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustSet")
            .field("members", &self.len())
            .finish()
    }
}

impl TrustSet {
    /// A trust set containing exactly `members`.
    pub fn new(members: impl IntoIterator<Item = PublicKey>) -> Self {
        let set = Self::default();
        set.replace(members);
        set
    }

    /// Atomically replaces the trusted keys with `members`.
    pub fn replace(&self, members: impl IntoIterator<Item = PublicKey>) {
        let map: HashMap<PublicKey, MemberId> = members
            .into_iter()
            .map(|k| (k, MemberId::from_public_key(&k)))
            .collect();
        *self.inner.write().unwrap_or_else(PoisonError::into_inner) = map;
    }

    /// Whether `key` is currently trusted.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.read().contains_key(key)
    }

    /// The member id of a trusted key, or `None` if the key is not trusted.
    pub fn member_for(&self, key: &PublicKey) -> Option<MemberId> {
        self.read().get(key).copied()
    }

    /// Number of trusted keys.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PublicKey, MemberId>> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }
}
