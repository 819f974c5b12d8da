//! A Rust client of the node's HTTP API, used by the CLI, the demo and the tests.

use std::time::Duration;

use consort_ledger::Transaction;
use serde_json::{json, Value};

use crate::config::MemberDir;
use crate::error::NodeError;

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    pub fn new(api_addr: &str, token: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            // The node closes keep-alive connections idle for its header timeout (10 s);
            // dropping ours first keeps a request from racing that close.
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            base: format!("http://{api_addr}"),
            token: token.to_string(),
            http,
        }
    }

    /// A client for the node of a member directory.
    pub fn for_dir(dir: &MemberDir) -> Result<Self, NodeError> {
        let config = dir.load_config()?;
        Ok(Self::new(&config.api_addr, &dir.load_token()?))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<reqwest::Response, NodeError> {
        let response =
            request
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| NodeError::Unreachable {
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(NodeError::Api { status, message })
    }

    pub async fn get_json(&self, path: &str) -> Result<Value, NodeError> {
        let url = format!("{}{}", self.base, path);
        let response = self.send(self.http.get(&url), &url).await?;
        response
            .json()
            .await
            .map_err(|e| NodeError::Protocol(e.to_string()))
    }

    /// [`Self::post_json`] for requests that may take longer than the default timeout.
    pub async fn post_json_waiting(
        &self,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, NodeError> {
        let url = format!("{}{}", self.base, path);
        let request = self.http.post(&url).json(body).timeout(timeout);
        let response = self.send(request, &url).await?;
        response
            .json()
            .await
            .map_err(|e| NodeError::Protocol(e.to_string()))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Value, NodeError> {
        let url = format!("{}{}", self.base, path);
        let response = self.send(self.http.post(&url).json(body), &url).await?;
        response
            .json()
            .await
            .map_err(|e| NodeError::Protocol(e.to_string()))
    }

    pub async fn status(&self) -> Result<Value, NodeError> {
        self.get_json("/api/ledger/status").await
    }

    /// Submits one transaction; with `wait`, returns once it is committed.
    pub async fn submit(&self, tx: &Transaction, wait: bool) -> Result<Value, NodeError> {
        self.post_json(
            "/api/tx",
            &json!({ "tx": hex::encode(tx.encode()), "wait": wait }),
        )
        .await
    }

    /// Submits a batch; the answer has one result per transaction.
    pub async fn submit_many(
        &self,
        txs: &[Transaction],
        wait: bool,
    ) -> Result<Vec<Value>, NodeError> {
        let hexes: Vec<String> = txs.iter().map(|t| hex::encode(t.encode())).collect();
        let answer = self
            .post_json("/api/txs", &json!({ "txs": hexes, "wait": wait }))
            .await?;
        match answer["results"].as_array() {
            Some(results) => Ok(results.clone()),
            None => Err(NodeError::Protocol("no results in the batch answer".into())),
        }
    }

    pub async fn block(&self, height: u64) -> Result<Value, NodeError> {
        self.get_json(&format!("/api/ledger/blocks/{height}")).await
    }

    pub async fn tx(&self, id: &str) -> Result<Value, NodeError> {
        self.get_json(&format!("/api/ledger/txs/{id}")).await
    }

    /// The committed transaction `id` as `GET /api/ledger/txs/{id}` shows it, or `None` if
    /// this node's chain does not hold it (yet).
    pub async fn find_tx(&self, id: &consort_crypto::Hash) -> Result<Option<Value>, NodeError> {
        match self.tx(&id.to_string()).await {
            Ok(found) => Ok(Some(found)),
            Err(NodeError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn proof(&self, id: &str) -> Result<Value, NodeError> {
        self.get_json(&format!("/api/ledger/proof/{id}")).await
    }

    /// The catalog of every member's registered datasets.
    pub async fn catalog(&self) -> Result<Vec<Value>, NodeError> {
        let answer = self.get_json("/api/datasets").await?;
        match answer["datasets"].as_array() {
            Some(list) => Ok(list.clone()),
            None => Err(NodeError::Protocol(
                "no datasets in the catalog answer".into(),
            )),
        }
    }

    pub async fn verify(&self) -> Result<Value, NodeError> {
        self.get_json("/api/ledger/verify").await
    }

    pub async fn export(&self) -> Result<Vec<u8>, NodeError> {
        let url = format!("{}/api/ledger/export", self.base);
        let response = self.send(self.http.get(&url), &url).await?;
        Ok(response
            .bytes()
            .await
            .map_err(|e| NodeError::Protocol(e.to_string()))?
            .to_vec())
    }
}
