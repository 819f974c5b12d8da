//! Owner-side policy decisions.

// Test code: a failed expectation panics, by design.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use consort_crypto::{Hash, MemberId};
use consort_ledger::policy::{
    ColumnGrant, Grant, GrantEntry, Grantee, Permission, DEFAULT_MIN_GROUP_SIZE,
};
use consort_query::{check_policy, plan, Plan};
use support::*;

fn grant(
    id: u8,
    grantee: Grantee,
    cols: &[(&str, &[Permission])],
    k: u32,
    expires: Option<u64>,
) -> GrantEntry {
    let mut columns: Vec<ColumnGrant> = cols
        .iter()
        .map(|(c, ps)| ColumnGrant {
            column: c.to_string(),
            permissions: ps.to_vec(),
        })
        .collect();
    columns.sort_by(|a, b| a.column.cmp(&b.column));
    GrantEntry {
        id: Hash([id; 32]),
        owner: member(0),
        grant: Grant {
            dataset: "sales".into(),
            grantee,
            columns,
            min_group_size: k,
            expires_ms: expires,
        },
        granted_ms: 0,
        revoked_by: None,
    }
}

fn p(sql: &str) -> Plan {
    plan(sql, &catalog()).unwrap()
}

fn check(
    plan: &Plan,
    req: MemberId,
    grants: &[GrantEntry],
    at: u64,
) -> consort_query::PolicyDecision {
    let refs: Vec<&GrantEntry> = grants.iter().collect();
    check_policy(plan, &member(0), "sales", &req, &refs, at)
}

const AGG: &[Permission] = &[Permission::Aggregate];
const GRP: &[Permission] = &[Permission::Group];
const FIL: &[Permission] = &[Permission::Filter];

#[test]
fn approved_with_grant_and_k() {
    let q = p("SELECT region, SUM(amount) FROM sales WHERE year > 2020 GROUP BY region");
    let g = grant(
        1,
        Grantee::Member(member(5)),
        &[("region", GRP), ("amount", AGG), ("year", FIL)],
        5,
        None,
    );
    let d = check(&q, member(5), &[g], 10);
    assert!(d.approve, "{}", d.reason);
    assert_eq!(d.min_group_size, 5);
}

#[test]
fn missing_permission_is_named() {
    let q = p("SELECT region, SUM(amount) FROM sales GROUP BY region");
    let g = grant(
        1,
        Grantee::Member(member(5)),
        &[("region", GRP), ("amount", FIL)],
        3,
        None,
    );
    let d = check(&q, member(5), &[g], 10);
    assert!(!d.approve);
    assert_eq!(d.min_group_size, 0);
    assert_eq!(
        d.reason,
        format!(
            "column \"amount\" lacks permission \"aggregate\" for member {}",
            member(5)
        )
    );
}

#[test]
fn filter_only_column_in_select_is_refused() {
    let g = grant(1, Grantee::Anyone, &[("region", FIL)], 3, None);
    for (sql, missing) in [
        ("SELECT region FROM sales", "plain"),
        (
            "SELECT region, COUNT(*) FROM sales GROUP BY region",
            "group",
        ),
        ("SELECT MAX(qty) FROM sales WHERE region = 'a'", "aggregate"),
    ] {
        let d = check(&p(sql), member(5), std::slice::from_ref(&g), 10);
        assert!(!d.approve, "{sql}");
        assert!(
            d.reason.contains(&format!("\"{missing}\"")),
            "{sql}: {}",
            d.reason
        );
    }
    let d = check(
        &p("SELECT COUNT(*) FROM sales WHERE region = 'a'"),
        member(5),
        &[g],
        10,
    );
    assert!(d.approve, "{}", d.reason);
}

#[test]
fn expired_revoked_and_other_grantee_ignored() {
    let q = p("SELECT SUM(amount) FROM sales");
    let expired = grant(
        1,
        Grantee::Member(member(5)),
        &[("amount", AGG)],
        3,
        Some(100),
    );
    assert!(check(&q, member(5), std::slice::from_ref(&expired), 99).approve);
    assert!(!check(&q, member(5), &[expired], 100).approve);
    let mut revoked = grant(2, Grantee::Member(member(5)), &[("amount", AGG)], 3, None);
    revoked.revoked_by = Some(Hash([7; 32]));
    assert!(!check(&q, member(5), &[revoked], 1).approve);
    let other = grant(3, Grantee::Member(member(6)), &[("amount", AGG)], 3, None);
    let d = check(&q, member(5), &[other], 1);
    assert!(!d.approve);
    assert!(d.reason.contains("no grant"), "{}", d.reason);
    // A grant by another owner or on another dataset does not count either.
    let mut foreign = grant(4, Grantee::Anyone, &[("amount", AGG)], 3, None);
    foreign.owner = member(1);
    assert!(!check(&q, member(5), &[foreign], 1).approve);
}

#[test]
fn grants_are_unioned_and_k_is_the_max_needed() {
    let q = p("SELECT region, AVG(amount) FROM sales GROUP BY region");
    let a = grant(1, Grantee::Member(member(5)), &[("region", GRP)], 4, None);
    let b = grant(2, Grantee::Anyone, &[("amount", AGG)], 7, None);
    let unrelated = grant(3, Grantee::Anyone, &[("note", FIL)], 50, None);
    assert!(!check(&q, member(5), std::slice::from_ref(&a), 1).approve);
    let d = check(&q, member(5), &[a, b, unrelated], 1);
    assert!(d.approve, "{}", d.reason);
    assert_eq!(d.min_group_size, 7);
}

#[test]
fn star_grantee_and_plain_implies_aggregate() {
    let q = p("SELECT region, MAX(amount) FROM sales GROUP BY region");
    let g = grant(
        1,
        Grantee::Anyone,
        &[
            ("region", &[Permission::Plain]),
            ("amount", &[Permission::Plain]),
        ],
        2,
        None,
    );
    let d = check(&q, member(6), &[g], 1);
    assert!(d.approve, "{}", d.reason);
    assert_eq!(d.min_group_size, 2);
}

#[test]
fn owner_needs_no_grant() {
    let q = p("SELECT region FROM sales");
    let d = check(&q, member(0), &[], 1);
    assert!(d.approve);
    assert_eq!(d.min_group_size, DEFAULT_MIN_GROUP_SIZE);
}

#[test]
fn count_star_needs_some_grant() {
    let q = p("SELECT COUNT(*) FROM sales");
    assert!(!check(&q, member(5), &[], 1).approve);
    let g = grant(1, Grantee::Anyone, &[("note", FIL)], 9, None);
    let d = check(&q, member(5), &[g], 1);
    assert!(d.approve);
    assert_eq!(d.min_group_size, 9);
}

#[test]
fn dataset_not_in_plan_is_refused() {
    let q = plan(r#"SELECT COUNT(*) FROM "m1".sales"#, &catalog()).unwrap();
    let d = check(&q, member(0), &[], 1);
    assert!(!d.approve);
}
