//! Grants and joint queries: `grant`, `revoke`, `grants`, `query`, `queries`,
//! `query-show`. Grants are signed here with the member's key and submitted through the
//! node's API; queries are planned and run by the member's node.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use consort_crypto::Hash;
use consort_demo::ledger::sign_for;
use consort_demo::output::print_json;
use consort_ledger::policy::{ColumnGrant, Grant, Grantee, Permission, Revoke};
use consort_ledger::TxPayload;
use consort_node::client::ApiClient;
use consort_node::config::MemberDir;
use serde_json::{json, Value};

/// Parses `col:perm[+perm],…`. An unquoted column name may itself contain `:` (the last
/// one splits). A column name in double quotes may contain anything, `,` and `:` included,
/// with `""` for a quote: `"a:b":plain,"x,y":aggregate`.
pub fn parse_columns(spec: &str) -> Result<Vec<ColumnGrant>> {
    let mut columns: Vec<ColumnGrant> = Vec::new();
    for (column, perms) in column_items(spec)? {
        let mut permissions = perms
            .split('+')
            .map(|p| {
                Permission::parse(p.trim()).ok_or_else(|| {
                    anyhow!(
                        "unknown permission {p:?} for column {column:?} (expected plain, group, filter, aggregate or join)"
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        permissions.sort();
        permissions.dedup();
        match columns.iter_mut().find(|c| c.column == column) {
            Some(existing) => {
                existing.permissions.extend(permissions);
                existing.permissions.sort();
                existing.permissions.dedup();
            }
            None => columns.push(ColumnGrant {
                column,
                permissions,
            }),
        }
    }
    if columns.is_empty() {
        bail!("--columns names no column");
    }
    columns.sort_by(|a, b| a.column.cmp(&b.column));
    Ok(columns)
}

/// Splits `--columns` into (column, permissions) items at the commas outside quotes.
fn column_items(spec: &str) -> Result<Vec<(String, String)>> {
    let mut items = Vec::new();
    let mut rest = spec;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(items);
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let (column, after) = unquote(quoted)
                .ok_or_else(|| anyhow!("--columns: unterminated quote in {rest}"))?;
            let after = after.trim_start();
            let Some(after) = after.strip_prefix(':') else {
                bail!("--columns item for column {column:?} is not \"col\":perm[+perm]");
            };
            let (perms, next) = after.split_once(',').unwrap_or((after, ""));
            if column.is_empty() {
                bail!("--columns item \"\":{perms} has no column name");
            }
            items.push((column, perms.to_string()));
            rest = next;
            continue;
        }
        let (item, next) = rest.split_once(',').unwrap_or((rest, ""));
        rest = next;
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (column, perms) = item
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("--columns item {item:?} is not col:perm[+perm]"))?;
        if column.is_empty() {
            bail!("--columns item {item:?} has no column name");
        }
        items.push((column.to_string(), perms.to_string()));
    }
}

/// Reads a quoted name up to its closing quote (`""` stands for one quote); returns the
/// name and the text after the closing quote, or `None` if the quote is never closed.
fn unquote(text: &str) -> Option<(String, &str)> {
    let mut name = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '"' {
            name.push(c);
            continue;
        }
        if text[i + 1..].starts_with('"') {
            name.push('"');
            chars.next();
            continue;
        }
        return Some((name, &text[i + 1..]));
    }
    None
}

/// Parses `--expires`: RFC 3339 (`2027-01-31T12:00:00Z`), a date (`2027-01-31`, midnight
/// UTC), or a duration from now (`90s`, `30m`, `12h`, `7d`).
pub fn parse_expiry(text: &str, now_ms: u64) -> Result<u64> {
    let text = text.trim();
    if let Some((digits, unit)) = text
        .find(|c: char| !c.is_ascii_digit())
        .filter(|i| *i > 0)
        .map(|i| text.split_at(i))
    {
        let scale: u64 = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => 0,
        };
        if scale > 0 {
            let n: u64 = digits.parse().context("--expires duration")?;
            return n
                .checked_mul(scale)
                .and_then(|d| d.checked_add(now_ms))
                .ok_or_else(|| anyhow!("--expires {text} is too far away"));
        }
    }
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map(|d| {
                d.and_hms_opt(0, 0, 0)
                    .unwrap_or_default()
                    .and_utc()
                    .timestamp_millis()
            })
        })
        .map_err(|_| {
            anyhow!("--expires {text:?} is not RFC 3339, YYYY-MM-DD or a duration like 7d")
        })?;
    u64::try_from(parsed).map_err(|_| anyhow!("--expires {text} is before 1970"))
}

pub struct GrantArgs<'a> {
    pub dataset: &'a str,
    pub to: &'a str,
    pub columns: &'a str,
    pub min_group_size: u32,
    pub expires: Option<&'a str>,
    pub json: bool,
}

pub async fn grant(dir: &MemberDir, args: GrantArgs<'_>) -> Result<i32> {
    let client = ApiClient::for_dir(dir)?;
    let grantee = if args.to == "*" {
        Grantee::Anyone
    } else {
        Grantee::Member(consort_node::datasets::fetch::resolve_member(&client, args.to).await?)
    };
    let now = consort_node::clock::now_ms();
    let grant = Grant {
        dataset: args.dataset.to_string(),
        grantee,
        columns: parse_columns(args.columns)?,
        min_group_size: args.min_group_size,
        expires_ms: args.expires.map(|e| parse_expiry(e, now)).transpose()?,
    };
    let tx = sign_for(dir, TxPayload::Grant(grant))?;
    let answer = client.submit(&tx, true).await?;
    report_tx(&answer, &tx.id(), "grant", args.json)
}

pub async fn revoke(dir: &MemberDir, grant_id: &str, json: bool) -> Result<i32> {
    let grant: Hash = grant_id
        .parse()
        .map_err(|_| anyhow!("{grant_id:?} is not a grant id (64 hex digits)"))?;
    let client = ApiClient::for_dir(dir)?;
    let tx = sign_for(dir, TxPayload::Revoke(Revoke { grant }))?;
    let answer = client.submit(&tx, true).await?;
    report_tx(&answer, &tx.id(), "revocation", json)
}

fn report_tx(answer: &Value, id: &Hash, what: &str, json: bool) -> Result<i32> {
    let valid = answer["valid"].as_bool() == Some(true);
    if json {
        let mut out = answer.clone();
        out["id"] = json!(id.to_string());
        print_json(&out);
    } else if valid {
        println!(
            "{what} {id} committed in block {}",
            answer["height"].as_u64().unwrap_or_default()
        );
    }
    if valid {
        Ok(0)
    } else {
        bail!(
            "the ledger recorded the {what} as invalid: {}",
            answer["reason"].as_str().unwrap_or("not committed")
        )
    }
}

pub async fn grants(dir: &MemberDir, json: bool) -> Result<i32> {
    let answer = ApiClient::for_dir(dir)?.get_json("/api/grants").await?;
    if json {
        print_json(&answer);
        return Ok(0);
    }
    for (title, key) in [("given", "given"), ("received", "received")] {
        let list = answer[key].as_array().cloned().unwrap_or_default();
        println!("grants {title}: {}", list.len());
        for g in list {
            let columns: Vec<String> = g["columns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let perms: Vec<&str> = c["permissions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    format!("{}:{}", c["column"].as_str().unwrap_or(""), perms.join("+"))
                })
                .collect();
            println!(
                "  {}  {}.{} -> {}  [{}]  k={}  {}",
                g["grant_id"].as_str().unwrap_or(""),
                g["owner"].as_str().unwrap_or(""),
                g["dataset"].as_str().unwrap_or(""),
                g["grantee"].as_str().unwrap_or(""),
                columns.join(", "),
                g["min_group_size"],
                g["status"].as_str().unwrap_or("")
            );
        }
    }
    Ok(0)
}

pub async fn query(
    dir: &MemberDir,
    sql: &str,
    json: bool,
    out: Option<&Path>,
    timeout_secs: u64,
) -> Result<i32> {
    let client = ApiClient::for_dir(dir)?;
    let answer = client
        .post_json_waiting(
            "/api/query",
            &json!({ "sql": sql, "timeout_secs": timeout_secs }),
            Duration::from_secs(timeout_secs + 15),
        )
        .await?;
    if let Some(path) = out {
        write_csv(path, &answer)?;
    }
    if json {
        print_json(&answer);
    } else {
        print_table(&answer);
        if let Some(path) = out {
            println!("wrote {}", path.display());
        }
    }
    Ok(0)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_table(answer: &Value) {
    let columns: Vec<String> = answer["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(cell)
        .collect();
    let rows: Vec<Vec<String>> = answer["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r.as_array().into_iter().flatten().map(cell).collect())
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!("{}", line(&columns));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for row in &rows {
        println!("{}", line(row));
    }
    let query_id = answer["query_id"].as_str().unwrap_or("");
    if query_id.is_empty() {
        // EXPLAIN: nothing was asked of anyone, nothing recorded.
        println!("(explained; nothing was recorded)");
        return;
    }
    println!(
        "({} row{}, {} group{} suppressed; query {})",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        answer["suppressed_groups"],
        if answer["suppressed_groups"] == 1 {
            ""
        } else {
            "s"
        },
        query_id
    );
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_csv(path: &Path, answer: &Value) -> Result<()> {
    let mut text = String::new();
    let header: Vec<String> = answer["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| csv_field(&cell(c)))
        .collect();
    text.push_str(&header.join(","));
    text.push('\n');
    for row in answer["rows"].as_array().into_iter().flatten() {
        let cells: Vec<String> = row
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| match v {
                Value::Null => String::new(),
                other => csv_field(&cell(other)),
            })
            .collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub async fn queries(dir: &MemberDir, json: bool) -> Result<i32> {
    let answer = ApiClient::for_dir(dir)?.get_json("/api/queries").await?;
    if json {
        print_json(&answer);
        return Ok(0);
    }
    let list = answer.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no queries yet");
    }
    for q in list {
        println!(
            "{}  {:<18} {:<12} {}",
            q["query_id"].as_str().unwrap_or(""),
            q["status"].as_str().unwrap_or(""),
            q["requester"].as_str().unwrap_or(""),
            q["sql"].as_str().unwrap_or("")
        );
    }
    Ok(0)
}

pub async fn query_show(dir: &MemberDir, id: &str, json: bool) -> Result<i32> {
    if id.parse::<Hash>().is_err() {
        bail!("{id:?} is not a query id (64 hex digits)");
    }
    let q = ApiClient::for_dir(dir)?
        .get_json(&format!("/api/queries/{id}"))
        .await?;
    if json {
        print_json(&q);
        return Ok(0);
    }
    println!("query {}", q["query_id"].as_str().unwrap_or(""));
    println!("  sql:        {}", q["sql"].as_str().unwrap_or(""));
    println!("  requester:  {}", q["requester"].as_str().unwrap_or(""));
    println!("  status:     {}", q["status"].as_str().unwrap_or(""));
    println!("  plan hash:  {}", q["plan_hash"].as_str().unwrap_or(""));
    let compute: Vec<&str> = q["compute"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!("  compute:    {}", compute.join(", "));
    for d in q["decisions"].as_array().into_iter().flatten() {
        println!(
            "  decision:   {} {} ({}) tx {}",
            d["owner"].as_str().unwrap_or(""),
            if d["approve"] == true {
                "approved"
            } else {
                "refused"
            },
            d["reason"].as_str().unwrap_or(""),
            d["tx_id"].as_str().unwrap_or("")
        );
    }
    match q["result"].as_object() {
        None => println!("  result:     none yet"),
        Some(r) => println!(
            "  result:     {} {} tx {}",
            r.get("status").and_then(Value::as_str).unwrap_or(""),
            r.get("reason")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| r
                    .get("result_hash")
                    .and_then(Value::as_str)
                    .map(|h| format!("hash {h}")))
                .unwrap_or_default(),
            r.get("tx_id").and_then(Value::as_str).unwrap_or("")
        ),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(spec: &str) -> Vec<(String, Vec<Permission>)> {
        parse_columns(spec)
            .unwrap_or_else(|e| panic!("{spec}: {e}"))
            .into_iter()
            .map(|c| (c.column, c.permissions))
            .collect()
    }

    fn error(spec: &str) -> String {
        match parse_columns(spec) {
            Ok(columns) => panic!("{spec} parsed as {columns:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn unquoted_syntax_is_unchanged() {
        let mut age = vec![Permission::Plain, Permission::Filter, Permission::Aggregate];
        age.sort();
        assert_eq!(
            parsed("age:aggregate+filter, ward:group,age:plain"),
            vec![
                ("age".to_string(), age),
                ("ward".to_string(), vec![Permission::Group]),
            ]
        );
        assert_eq!(parsed("a:b:plain")[0].0, "a:b", "the last colon splits");
        assert_eq!(
            parsed("a\"b:plain")[0].0,
            "a\"b",
            "a quote inside a bare name"
        );
        assert_eq!(parsed(",,x:join,")[0].0, "x");
    }

    #[test]
    fn quoted_names_may_hold_colons_commas_and_quotes() {
        let got = parsed(r#""a:b":plain,"x,y":aggregate , "say ""hi""" : group+filter,z:join"#);
        let names: Vec<&str> = got.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, vec!["a:b", "say \"hi\"", "x,y", "z"]);
        assert_eq!(got[0].1, vec![Permission::Plain]);
        assert_eq!(got[2].1, vec![Permission::Aggregate]);
        assert_eq!(got[1].1.len(), 2);
        // A quoted name equal to a bare one is the same column.
        assert_eq!(parsed(r#""age":plain,age:group"#).len(), 1);
    }

    #[test]
    fn malformed_specs_are_one_line_errors() {
        for (spec, needle) in [
            (r#""a:b:plain"#, "unterminated quote"),
            (r#"x:plain,"a"#, "unterminated quote"),
            (r#"x:plain,"a""#, "is not \"col\":perm"),
            (r#""a"plain"#, "is not \"col\":perm"),
            (r#""":plain"#, "no column name"),
            (r#""a":sing"#, "unknown permission"),
            ("nocolon", "is not col:perm"),
            (":plain", "no column name"),
            ("  ", "names no column"),
        ] {
            let e = error(spec);
            assert!(e.contains(needle), "{spec}: {e}");
            assert!(!e.contains('\n'), "{spec}: {e}");
        }
    }
}
