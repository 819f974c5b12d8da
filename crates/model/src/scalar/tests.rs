use super::*;
use crate::value::Column;

fn schema() -> Schema {
    let col = |name: &str, ty, nullable| Column {
        name: name.into(),
        ty,
        nullable,
    };
    Schema {
        columns: vec![
            col("a", ColumnType::Integer, false),
            col("b", ColumnType::Integer, true),
            col("f", ColumnType::Float, false),
        ],
    }
}

fn c(name: &str) -> Box<ScalarExpr> {
    Box::new(ScalarExpr::column(name))
}

fn arith(op: ArithOp, l: Box<ScalarExpr>, r: Box<ScalarExpr>) -> ScalarExpr {
    ScalarExpr::Arith {
        op,
        left: l,
        right: r,
    }
}

#[test]
fn never_null_is_conservative() {
    let s = schema();
    assert!(arith(ArithOp::Add, c("a"), c("a")).never_null(&s));
    assert!(!arith(ArithOp::Add, c("a"), c("b")).never_null(&s));
    // Division by zero is NULL.
    assert!(!arith(ArithOp::Div, c("a"), c("a")).never_null(&s));
    assert!(!ScalarExpr::NullIf(c("a"), c("a")).never_null(&s));
    assert!(
        ScalarExpr::Coalesce(vec![ScalarExpr::column("b"), ScalarExpr::column("a")]).never_null(&s)
    );
    let sqrt = ScalarExpr::Math {
        func: MathFunc::Sqrt,
        arg: c("f"),
    };
    assert!(!sqrt.never_null(&s));
    let case = |otherwise: Option<Box<ScalarExpr>>| ScalarExpr::Case {
        whens: vec![(
            ScalarExpr::Compare {
                op: CmpOp::Gt,
                left: c("b"),
                right: c("a"),
            },
            ScalarExpr::column("a"),
        )],
        otherwise,
    };
    assert!(case(Some(c("a"))).never_null(&s));
    assert!(!case(None).never_null(&s));
}

#[test]
fn a_store_refuses_bad_derived_columns() {
    let s = schema();
    let d = |name: &str, expr: ScalarExpr| Derived {
        name: name.into(),
        expr,
    };
    let ok = d("_consort_e0", arith(ArithOp::Add, c("a"), c("b")));
    let extended = extend_schema(&s, std::slice::from_ref(&ok)).unwrap();
    assert_eq!(extended.columns.len(), 4);
    assert!(extended.columns[3].nullable);
    for (bad, needle) in [
        (vec![d("a", ScalarExpr::column("a"))], "name"),
        (vec![d("_consort_e0x", ScalarExpr::column("a"))], "name"),
        (vec![ok.clone(), ok.clone()], "twice"),
        (
            vec![d("_consort_e0", ScalarExpr::column("nope"))],
            "unknown column",
        ),
        // A derived column reads only the table's own columns.
        (
            vec![
                ok.clone(),
                d("_consort_e1", ScalarExpr::column("_consort_e0")),
            ],
            "unknown column",
        ),
    ] {
        let e = extend_schema(&s, &bad).unwrap_err();
        assert!(e.contains(needle), "{e}");
    }
    let many: Vec<Derived> = (0..=MAX_DERIVED)
        .map(|i| d(&format!("_consort_e{i}"), ScalarExpr::column("a")))
        .collect();
    assert!(extend_schema(&s, &many).unwrap_err().contains("at most"));
    let mut deep = ScalarExpr::column("a");
    for _ in 0..=MAX_DEPTH {
        deep = ScalarExpr::Negate(Box::new(deep));
    }
    let e = extend_schema(&s, &[d("_consort_e0", deep)]).unwrap_err();
    assert!(e.contains("deeper"), "{e}");
}

#[test]
fn types_follow_the_one_rule() {
    let s = schema();
    assert_eq!(
        arith(ArithOp::Mul, c("a"), c("b")).result_type(&s),
        Ok(ColumnType::Integer)
    );
    assert!(arith(ArithOp::Add, c("a"), c("f")).result_type(&s).is_err());
    assert!(arith(ArithOp::Rem, c("f"), c("f")).result_type(&s).is_err());
    assert_eq!(
        ScalarExpr::Length(c("a")).result_type(&s),
        Err("LENGTH of a integer value (text only)".into())
    );
}
