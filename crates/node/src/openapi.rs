//! The OpenAPI document served at `/api/openapi.json`.

use serde_json::{json, Value};

pub fn document() -> Value {
    let error = json!({ "$ref": "#/components/schemas/Error" });
    let op = |summary: &str| {
        json!({
            "summary": summary,
            "security": [{ "bearer": [] }],
            "responses": {
                "200": { "description": "success", "content": { "application/json": {} } },
                "400": { "description": "malformed request", "content": { "application/json": { "schema": error } } },
                "401": { "description": "missing or wrong token", "content": { "application/json": { "schema": error } } },
                "404": { "description": "not found", "content": { "application/json": { "schema": error } } },
            }
        })
    };
    json!({
        "openapi": "3.0.3",
        "info": { "title": "consort node API", "version": env!("CARGO_PKG_VERSION") },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Error": { "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"] } }
        },
        "paths": {
            "/api/health": { "get": { "summary": "liveness, no token", "responses": { "200": { "description": "ok" } } } },
            "/api/tx": { "post": op("submit one signed transaction {tx: hex, wait: bool}; waits for commit unless wait=false") },
            "/api/txs": { "post": op("submit a batch {txs: [hex], wait: bool}; one result per transaction") },
            "/api/ledger/status": { "get": op("height, head hash, leader, members, this node's role") },
            "/api/ledger/blocks/{height}": { "get": op("one block with its transactions and outcomes") },
            "/api/ledger/txs/{id}": { "get": op("one committed transaction and where it is") },
            "/api/ledger/proof/{id}": { "get": op("an inclusion proof, format version 2 (docs/FORMAT.md §12): the block, the genesis and governance history, and the state-root openings that prove membership and the outcome code") },
            "/api/ledger/export": { "get": op("the whole chain in the export format (application/octet-stream)") },
            "/api/ledger/verify": { "get": op("replay the stored chain from genesis and report") },
            "/api/datasets": { "get": op("the catalog: every member's registered datasets (schema, counts, commitment; no rows)") },
        }
    })
}
