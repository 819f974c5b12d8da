//! The joint-query part of `consort demo`: grants on every hospital's visits, then a count,
//! a grouped average, a HAVING clause, a suppressed small group, a refused query and a
//! private join with the second hospital's follow-ups of the first one's patients, each
//! answered by MPC and recorded on the ledger.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use consort_ledger::policy::{ColumnGrant, Grant, Grantee, Permission};
use consort_ledger::TxPayload;
use serde_json::{json, Value};

use crate::cluster::{LocalCluster, LocalMember};
use crate::ledger::sign_for;

/// What every hospital lets every member do with its visits: group by region and ward,
/// filter on age and admission date, aggregate the amount, join on the patient id (which
/// is never revealed). Diagnoses get no permission at all.
pub const DEMO_GRANT: &str =
    "patient:join,region:group,ward:group,age:filter,admitted:filter,amount:aggregate";

/// What the second hospital lets everyone do with its follow-ups.
pub const FOLLOWUP_GRANT: &str = "patient:join,clinic:group,cost:aggregate";

/// The demo's queries, with whether each should be answered.
pub const DEMO_QUERIES: [(&str, &str, bool); 6] = [
    ("a count over all hospitals", "SELECT COUNT(*) AS visits FROM visits", true),
    (
        "a grouped average",
        "SELECT region, COUNT(*), AVG(amount) FROM visits GROUP BY region ORDER BY region",
        true,
    ),
    (
        "a HAVING clause decided inside MPC",
        "SELECT ward, COUNT(*), SUM(amount) FROM visits WHERE age > 60 GROUP BY ward HAVING SUM(amount) > 100000 ORDER BY ward",
        true,
    ),
    (
        "a small group suppressed",
        "SELECT ward, COUNT(*), MAX(amount) FROM visits GROUP BY ward ORDER BY ward",
        true,
    ),
    (
        "a refused query (diagnosis has no permission)",
        "SELECT diagnosis, COUNT(*) FROM visits GROUP BY diagnosis",
        false,
    ),
    (
        "a private join: St Mary's visits of the patients Riverside follows up (PSI on the patient id)",
        "SELECT f.clinic, COUNT(*), AVG(v.amount), SUM(f.cost) FROM \"st-mary\".visits v JOIN \"riverside\".followups f ON v.patient = f.patient GROUP BY f.clinic ORDER BY f.clinic",
        true,
    ),
];

/// Writes the second hospital's follow-ups: three in four are patients of the first
/// hospital (ids `h0-0` … `h0-{patients - 1}`), seen again in one of three clinics; the
/// rest are patients of its own.
pub fn write_followups(path: &std::path::Path, rows: usize, patients: usize) -> Result<()> {
    let mut out = String::with_capacity(rows * 32);
    out.push_str("patient,clinic,cost\n");
    for p in 0..rows {
        let patient = if p % 4 == 3 {
            format!("r-{p}")
        } else {
            format!("h0-{}", (p * 7) % patients.max(1))
        };
        let clinic = ["cardiology", "oncology", "physio"][(p / 3) % 3];
        out += &format!(
            "{patient},{clinic},{}.{:02}\n",
            40 + (p * 53) % 460,
            p % 100
        );
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// The column grants of a spec such as [`DEMO_GRANT`]: `column:permission` items, one
/// permission each, sorted by column as `consort grant --columns` sorts them (that command
/// also reads quoted names and several permissions per column; the demo needs neither).
fn column_grants(spec: &str) -> Result<Vec<ColumnGrant>> {
    let mut columns = spec
        .split(',')
        .map(|item| {
            let (column, permission) = item
                .split_once(':')
                .ok_or_else(|| anyhow!("grant item {item:?} is not column:permission"))?;
            let permission = Permission::parse(permission)
                .ok_or_else(|| anyhow!("unknown permission in grant item {item:?}"))?;
            Ok(ColumnGrant {
                column: column.to_string(),
                permissions: vec![permission],
            })
        })
        .collect::<Result<Vec<_>>>()?;
    columns.sort_by(|a, b| a.column.cmp(&b.column));
    Ok(columns)
}

/// Records `member`'s grant to everyone of `columns` on `dataset`; returns its transaction id.
pub async fn grant(
    member: &LocalMember,
    dataset: &str,
    columns: &str,
    say: &dyn Fn(String),
) -> Result<String> {
    let grant = Grant {
        dataset: dataset.into(),
        grantee: Grantee::Anyone,
        columns: column_grants(columns)?,
        min_group_size: consort_ledger::policy::DEFAULT_MIN_GROUP_SIZE,
        expires_ms: None,
    };
    let tx = sign_for(&member.dir, TxPayload::Grant(grant))?;
    let answer = member.client.submit(&tx, true).await?;
    if answer["valid"] != true {
        bail!(
            "{}'s grant on {dataset} was recorded invalid: {}",
            member.name,
            answer["reason"].as_str().unwrap_or("not committed")
        );
    }
    say(format!(
        "{} granted everyone {columns} on {dataset} (k = 3) -> tx {}",
        member.name,
        tx.id()
    ));
    Ok(tx.id().to_string())
}

/// Every member's grant on its own `visits` (what the grouped queries over the union need).
pub async fn grant_visits(cluster: &LocalCluster, say: &dyn Fn(String)) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for member in &cluster.members {
        ids.push(grant(member, "visits", DEMO_GRANT, say).await?);
    }
    Ok(ids)
}

/// Records the grants; returns their transaction ids.
pub async fn grant_all(cluster: &LocalCluster, say: &dyn Fn(String)) -> Result<Vec<String>> {
    let mut ids = grant_visits(cluster, say).await?;
    let riverside = cluster
        .members
        .get(1)
        .ok_or_else(|| anyhow!("the demo needs a second member"))?;
    ids.push(grant(riverside, "followups", FOLLOWUP_GRANT, say).await?);
    Ok(ids)
}

/// Runs the demo queries from the first member; fails if any outcome is not the expected one.
pub async fn run_all(cluster: &LocalCluster, say: &dyn Fn(String)) -> Result<Vec<Value>> {
    let requester = &cluster.members[0];
    let mut reports = Vec::new();
    for (what, sql, should_answer) in DEMO_QUERIES {
        say(format!("\n{} asks {what}:\n  {sql}", requester.name));
        let answer = requester
            .client
            .post_json_waiting(
                "/api/query",
                &json!({ "sql": sql, "timeout_secs": 60 }),
                Duration::from_secs(75),
            )
            .await;
        match (answer, should_answer) {
            (Ok(answer), true) => {
                for line in table_lines(&answer) {
                    say(format!("  {line}"));
                }
                say(format!(
                    "  {} group(s) suppressed; recorded as request {} and result {}",
                    answer["suppressed_groups"],
                    answer["ledger"]["request"].as_str().unwrap_or(""),
                    answer["ledger"]["result"].as_str().unwrap_or("")
                ));
                reports.push(json!({ "what": what, "sql": sql, "answer": answer }));
            }
            (Err(e), false) => {
                say(format!("  refused as expected: {e}"));
                reports.push(json!({ "what": what, "sql": sql, "refused": e.to_string() }));
            }
            (Ok(answer), false) => {
                bail!("the demo query {sql:?} should have been refused, got {answer}")
            }
            (Err(e), true) => bail!("the demo query {sql:?} failed: {e}"),
        }
    }
    Ok(reports)
}

fn table_lines(answer: &Value) -> Vec<String> {
    let cell = |v: &Value| match v {
        Value::Null => "NULL".to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => format!("{f:.2}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    };
    let mut lines = vec![answer["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(cell)
        .collect::<Vec<_>>()
        .join(" | ")];
    for row in answer["rows"].as_array().into_iter().flatten() {
        lines.push(
            row.as_array()
                .into_iter()
                .flatten()
                .map(cell)
                .collect::<Vec<_>>()
                .join(" | "),
        );
    }
    lines
}
