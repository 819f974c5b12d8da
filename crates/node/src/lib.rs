//! The consort daemon: configuration, mutually authenticated peer links, Raft ordering of
//! ledger blocks, the HTTP API, and the orchestration that ties them to the pure ledger core.
//!
//! - [`config`]: the member directory (keys, token, config, member card, genesis copy);
//! - [`peer`]: TLS 1.3 peer links with pinned member keys;
//! - [`transport`]: the request/response [`transport::Transport`] trait over them, with an
//!   in-memory implementation and a conformance suite;
//! - [`raft`]: openraft storage, state machine and network;
//! - [`chain`]: the node's ledger state over its durable block store;
//! - [`sequencer`]: transaction intake and leader-side block building;
//! - [`api`]: the HTTP JSON API; [`client`]: its Rust client;
//! - [`core`]: [`core::NodeCore`], the node without sockets (chain, Raft over a transport,
//!   sequencer) and the submission path;
//! - [`node`]: [`node::run`], a core behind TLS peer links and the HTTP API.

pub mod api;
pub mod block_store;
pub mod chain;
pub mod client;
pub mod clock;
pub mod config;
pub mod core;
pub mod datasets;
pub mod error;
pub mod mpc;
pub mod node;
mod openapi;
pub mod peer;
pub mod query;
pub mod raft;
pub mod sequencer;
pub mod transport;
pub mod views;

pub use error::NodeError;

// Ingest refuses column names and counts the ledger would refuse, before loading anything;
// the two crates know nothing of each other, so the node (which joins them) holds them equal.
const _: () = assert!(
    consort_data::infer::MAX_COLUMN_NAME_BYTES == consort_ledger::rules_limits::MAX_NAME_BYTES
        && consort_data::infer::MAX_COLUMNS == consort_ledger::rules_limits::MAX_COLUMNS
);
