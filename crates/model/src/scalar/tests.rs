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

#[test]
fn the_second_set_of_functions_is_typed_and_bounded() {
    use ColumnType::*;
    let s = Schema {
        columns: vec![
            Column {
                name: "i".into(),
                ty: Integer,
                nullable: false,
            },
            Column {
                name: "f".into(),
                ty: Float,
                nullable: false,
            },
            Column {
                name: "t".into(),
                ty: Text,
                nullable: false,
            },
            Column {
                name: "d".into(),
                ty: Date,
                nullable: false,
            },
            Column {
                name: "ts".into(),
                ty: Timestamp,
                nullable: true,
            },
        ],
    };
    let round = |col: &str, digits| ScalarExpr::Round {
        arg: c(col),
        digits,
    };
    assert_eq!(round("i", -2).result_type(&s), Ok(Integer));
    assert_eq!(round("f", 18).result_type(&s), Ok(Float));
    assert!(round("f", 19)
        .result_type(&s)
        .unwrap_err()
        .contains("at most 18"));
    assert!(round("t", 0).result_type(&s).is_err());
    assert!(ScalarExpr::Power(c("i"), c("f")).result_type(&s).is_err());
    let extreme = |args: &[&str]| ScalarExpr::Extreme {
        greatest: true,
        args: args.iter().map(|a| ScalarExpr::column(a)).collect(),
    };
    assert_eq!(extreme(&["d", "d"]).result_type(&s), Ok(Date));
    assert!(extreme(&["i", "f"])
        .result_type(&s)
        .unwrap_err()
        .contains("one type"));
    assert!(extreme(&[]).result_type(&s).is_err());
    assert!(extreme(&["i"; 17]).result_type(&s).is_err());
    let substr = ScalarExpr::Substr {
        arg: c("t"),
        start: 1,
        len: Some(-1),
    };
    assert!(substr.result_type(&s).unwrap_err().contains("negative"));
    let shift = |amount| ScalarExpr::AddInterval {
        arg: c("d"),
        unit: IntervalUnit::Month,
        amount,
    };
    assert_eq!(shift(MAX_INTERVAL_MONTHS).result_type(&s), Ok(Date));
    assert!(shift(i64::MIN)
        .result_type(&s)
        .unwrap_err()
        .contains("INTERVAL"));
    assert_eq!(
        ScalarExpr::DateTrunc {
            unit: TruncUnit::Week,
            arg: c("ts"),
        }
        .result_type(&s),
        Ok(Timestamp)
    );
    assert_eq!(
        ScalarExpr::DateDiff(c("d"), c("d")).result_type(&s),
        Ok(Integer)
    );
    assert!(ScalarExpr::DateDiff(c("d"), c("ts"))
        .result_type(&s)
        .is_err());
    let cast = |col: &str, to| ScalarExpr::Cast { arg: c(col), to };
    assert_eq!(cast("f", Integer).result_type(&s), Ok(Integer));
    assert!(cast("f", Text).result_type(&s).is_err());
    assert!(cast("t", Float).result_type(&s).is_err());
    // Text to integer can be NULL (bad text); the others only from NULL.
    assert!(!cast("t", Integer).never_null(&s));
    assert!(cast("d", Text).never_null(&s));
    assert!(!cast("ts", Date).never_null(&s));
    assert!(!shift(1).never_null(&s));
    assert!(ScalarExpr::Replace {
        arg: c("t"),
        from: c("t"),
        to: c("t"),
    }
    .never_null(&s));
    assert_eq!(ScalarExpr::Power(c("f"), c("f")).columns(), vec!["f"],);
}
