//! Lexical bounds on query SQL (`docs/FORMAT.md` §8.4), checked before any parser sees it.
//!
//! A parser builds a chain of binary operators such as `1+1+…+1` as a left-deep tree
//! without recursing, but walking, printing or dropping that tree recurses once per
//! operator. Counting tokens and operators in the raw text bounds every such tree, whatever
//! the parser makes of the text.
//!
//! The counts deliberately ignore quoting and comments: an operator inside a string literal
//! is still counted. Whether a byte is inside a literal depends on dialect details (escapes,
//! quote styles) that two implementations could read differently, so counting everything is
//! the only rule that is both exact to specify and sure to over-estimate what the parser
//! sees. The limits are generous enough that real queries never meet them.

/// The bounds of rule version 2 (FORMAT.md §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlLimits {
    /// Bytes of UTF-8 text.
    pub max_bytes: usize,
    /// Words (maximal runs of ASCII letters, digits and `_`, or any non-ASCII character)
    /// plus other non-whitespace bytes, each counted as one token.
    pub max_tokens: usize,
    /// Operator bytes (`+ - * / % < > = ! | & ^ ~ @ # : ?`) plus operator words
    /// ([`OPERATOR_WORDS`], case-insensitive).
    pub max_operators: usize,
    /// The deepest nesting of `(`/`[`/`{` against `)`/`]`/`}`, never below zero.
    pub max_nesting: usize,
}

/// The limits every entry point applies, and the ledger rule from rule version 2 on.
pub const SQL_LIMITS: SqlLimits = SqlLimits {
    max_bytes: 65_536,
    max_tokens: 16_384,
    max_operators: 1_024,
    max_nesting: 64,
};

/// Words that combine expressions, counted as operators.
pub const OPERATOR_WORDS: &[&str] = &[
    "AND", "OR", "XOR", "NOT", "IS", "LIKE", "ILIKE", "BETWEEN", "IN", "DIV", "MOD", "REGEXP",
    "RLIKE", "SIMILAR", "GLOB", "COLLATE", "OVERLAPS", "CASE", "WHEN", "AT", "ESCAPE",
];

/// What the scan counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqlShape {
    pub bytes: usize,
    pub tokens: usize,
    pub operators: usize,
    pub nesting: usize,
}

fn is_operator_byte(b: u8) -> bool {
    matches!(
        b,
        b'+' | b'-'
            | b'*'
            | b'/'
            | b'%'
            | b'<'
            | b'>'
            | b'='
            | b'!'
            | b'|'
            | b'&'
            | b'^'
            | b'~'
            | b'@'
            | b'#'
            | b':'
            | b'?'
    )
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Counts `sql`'s tokens, operators and nesting in one pass over its bytes.
pub fn measure(sql: &str) -> SqlShape {
    let bytes = sql.as_bytes();
    let mut shape = SqlShape {
        bytes: bytes.len(),
        ..SqlShape::default()
    };
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        shape.tokens += 1;
        if is_word_byte(b) {
            let start = i;
            while i < bytes.len() && is_word_byte(bytes[i]) {
                i += 1;
            }
            let word = &bytes[start..i];
            if OPERATOR_WORDS
                .iter()
                .any(|w| w.as_bytes().eq_ignore_ascii_case(word))
            {
                shape.operators += 1;
            }
            continue;
        }
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                shape.nesting = shape.nesting.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ if is_operator_byte(b) => shape.operators += 1,
            _ => {}
        }
        i += 1;
    }
    shape
}

/// Checks `sql` against `limits`; the error is the one-line reason (part of the format as
/// an outcome detail, FORMAT.md §8.4).
pub fn check(sql: &str, limits: &SqlLimits) -> Result<SqlShape, String> {
    if sql.trim().is_empty() {
        return Err("the SQL is empty".into());
    }
    if sql.len() > limits.max_bytes {
        return Err(format!(
            "the SQL is {} bytes; at most {} are allowed",
            sql.len(),
            limits.max_bytes
        ));
    }
    let shape = measure(sql);
    if shape.tokens > limits.max_tokens {
        return Err(format!(
            "the SQL has {} tokens; at most {} are allowed",
            shape.tokens, limits.max_tokens
        ));
    }
    if shape.operators > limits.max_operators {
        return Err(format!(
            "the SQL has {} operators; at most {} are allowed",
            shape.operators, limits.max_operators
        ));
    }
    if shape.nesting > limits.max_nesting {
        return Err(format!(
            "the SQL nests brackets {} deep; at most {} are allowed",
            shape.nesting, limits.max_nesting
        ));
    }
    Ok(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_operators_and_nesting() {
        let s = measure("SELECT COUNT(*) FROM h/visits WHERE age >= 1 AND NOT (x <> 'a+b')");
        assert_eq!(s.nesting, 1);
        // * / > = AND NOT < > + : the literal's `+` is counted on purpose.
        assert_eq!(s.operators, 9);
        assert_eq!(s.tokens, 26);
    }

    #[test]
    fn operator_words_are_whole_words_in_any_case() {
        assert_eq!(measure("a and b Or c").operators, 2);
        assert_eq!(measure("android oracle island").operators, 0);
    }

    #[test]
    fn closing_brackets_never_go_below_zero() {
        assert_eq!(measure(")))(((").nesting, 3);
    }

    #[test]
    fn long_chains_are_refused_by_operator_count() {
        let sql = format!(
            "SELECT COUNT(*) FROM t WHERE age > 1{}",
            "+1".repeat(30_000)
        );
        let err = check(&sql, &SQL_LIMITS).unwrap_err();
        assert!(err.contains("tokens") || err.contains("operators"), "{err}");
        let ands = format!(
            "SELECT COUNT(*) FROM t WHERE {}",
            vec!["age > 1"; 2_000].join(" AND ")
        );
        assert!(check(&ands, &SQL_LIMITS).unwrap_err().contains("operators"));
    }

    #[test]
    fn deep_nesting_and_size_are_refused() {
        let deep = format!("SELECT {}1{}", "(".repeat(65), ")".repeat(65));
        assert!(check(&deep, &SQL_LIMITS).unwrap_err().contains("nests"));
        let big = format!("SELECT '{}'", "x".repeat(70_000));
        assert!(check(&big, &SQL_LIMITS).unwrap_err().contains("bytes"));
        assert!(check("  ", &SQL_LIMITS).unwrap_err().contains("empty"));
    }

    #[test]
    fn ordinary_queries_pass() {
        let sql = "SELECT region, AVG(age) AS a FROM h/visits WHERE age BETWEEN 18 AND 65 \
                   AND region IN ('north', 'south') GROUP BY region HAVING COUNT(*) > 5 \
                   ORDER BY a DESC LIMIT 10";
        check(sql, &SQL_LIMITS).unwrap();
    }
}
