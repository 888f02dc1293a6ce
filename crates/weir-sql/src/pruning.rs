//! Which columns of its tables a script can read (projection pushdown, as
//! Flink pushes projections into its sources): a table's source reads only
//! those, so columns no query names are never decoded, shuffled, joined or
//! spilled.
//!
//! Owns [`reads`]. The answer is conservative: every identifier written
//! anywhere in the script but its `CREATE TABLE`s counts as read (a column, an alias, a table or a
//! function name alike), and anything that reads columns without naming
//! them (`*`, `t.*`, `TABLE t` as a query, a column list on an alias) or
//! breaks ties by the rows' whole content (`ROW_NUMBER()` and other `OVER`
//! functions, `FOR SYSTEM_TIME AS OF`) turns pruning off for the whole
//! script. Reading a column no query needs
//! is only slower; leaving out one it needs would change its rows, so when
//! in doubt every column is read. May use `sqlparser` only.
//!
//! ```text
//!  statements ─► every Ident (lowercased) ─► names
//!     SELECT * / t.* / TABLE t / alias(cols) / OVER / FOR SYSTEM_TIME AS OF
//!        ─► None (read every column)
//!  table source: declared columns ∩ names ∪ event time ∪ partitions ∪ op
//! ```

use sqlparser::ast::{
    self, FunctionArgExpr, Ident, Query, Select, SelectItem, SetExpr, Statement, TableFactor,
    Visit, Visitor,
};
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// The names (lowercased) every query of `statements` may read, or `None`
/// when some query reads columns it does not name.
pub(crate) fn reads(statements: &[Statement]) -> Option<BTreeSet<String>> {
    let mut names = Names::default();
    for st in statements {
        // a table's declaration names every column it has, read or not
        if matches!(st, Statement::CreateTable(_)) {
            continue;
        }
        if st.visit(&mut names).is_break() {
            return None;
        }
    }
    Some(names.seen)
}

/// Collects identifiers; breaks on a construct that reads unnamed columns.
#[derive(Default)]
struct Names {
    seen: BTreeSet<String>,
}

impl Visitor for Names {
    type Break = ();

    fn pre_visit_ident(&mut self, ident: &Ident) -> ControlFlow<()> {
        self.seen.insert(ident.value.to_lowercase());
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if reads_whole_table(&query.body) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        if select.projection.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
            )
        }) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        // a temporal join keeps each key's last version by content
        if matches!(
            factor,
            TableFactor::Table {
                version: Some(_),
                ..
            }
        ) {
            return ControlFlow::Break(());
        }
        let alias = match factor {
            TableFactor::Table { alias, .. } | TableFactor::Derived { alias, .. } => alias,
            _ => &None,
        };
        // `FROM t AS a(x, y)` names columns by position
        if alias.as_ref().is_some_and(|a| !a.columns.is_empty()) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &ast::Expr) -> ControlFlow<()> {
        match expr {
            ast::Expr::Wildcard(_) | ast::Expr::QualifiedWildcard(..) => ControlFlow::Break(()),
            // ROW_NUMBER() and OVER aggregations break ties by the rows'
            // whole content: a column no query names still decides which
            // row ranks first, so every column is read
            ast::Expr::Function(f) if f.over.is_some() => ControlFlow::Break(()),
            ast::Expr::Function(f) => match &f.args {
                // COUNT(*) counts rows; f(t.*) would read every column of t
                ast::FunctionArguments::List(list)
                    if list.args.iter().any(|a| {
                        matches!(
                            a,
                            ast::FunctionArg::Unnamed(FunctionArgExpr::QualifiedWildcard(_))
                                | ast::FunctionArg::Named {
                                    arg: FunctionArgExpr::QualifiedWildcard(_),
                                    ..
                                }
                        )
                    }) =>
                {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            },
            _ => ControlFlow::Continue(()),
        }
    }
}

/// Whether a query body is (or unions) `TABLE t`, which reads every column.
fn reads_whole_table(body: &SetExpr) -> bool {
    match body {
        SetExpr::Table(_) => true,
        SetExpr::SetOperation { left, right, .. } => {
            reads_whole_table(left) || reads_whole_table(right)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::FlinkDialect;
    use sqlparser::parser::Parser;

    fn of(sql: &str) -> Option<Vec<String>> {
        let st = Parser::parse_sql(&FlinkDialect, sql).expect("test SQL parses");
        reads(&st).map(|s| s.into_iter().collect())
    }

    #[test]
    fn every_identifier_counts_as_read() {
        let got = of("CREATE TABLE t (a BIGINT, b BIGINT, w BIGINT); CREATE VIEW v AS SELECT a, COUNT(*) AS n FROM t WHERE B > 1 GROUP BY a; \
             INSERT INTO s SELECT x.a, n FROM v AS x JOIN u ON x.a = u.c")
        .expect("no wildcard");
        for name in ["a", "b", "c", "n", "t", "u", "v", "x", "s"] {
            assert!(
                got.contains(&name.to_string()),
                "{name} missing from {got:?}"
            );
        }
        assert!(!got.contains(&"w".to_string()), "{got:?}");
    }

    #[test]
    fn constructs_reading_unnamed_columns_turn_pruning_off() {
        for sql in [
            "SELECT * FROM t",
            "SELECT a FROM (SELECT t.* FROM t)",
            "SELECT a FROM t AS x(a, b)",
            "INSERT INTO s TABLE t",
            "SELECT a FROM u UNION ALL TABLE t",
            "SELECT a FROM (SELECT * FROM t WHERE a > 1) WHERE a < 5",
            "SELECT a FROM (SELECT a, ROW_NUMBER() OVER (PARTITION BY a ORDER BY ts) AS rn \
             FROM t) WHERE rn = 1",
            "SELECT a, SUM(b) OVER (PARTITION BY a ORDER BY ts ROWS 1 PRECEDING) FROM t",
            "SELECT o.a, r.b FROM o JOIN r FOR SYSTEM_TIME AS OF o.ts ON o.a = r.a",
        ] {
            assert_eq!(of(sql), None, "{sql}");
        }
        // COUNT(*) counts rows: it names no column
        assert!(of("SELECT COUNT(*) FROM t").is_some());
    }
}
