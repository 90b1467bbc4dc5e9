//! One way to speak SQL to either store, for the jobs whose logic is the same in both (cases):
//! statements are written once with `$1`-style placeholders and values of one type, and come
//! back as rows of the same values. SQLite is handed `?1` for `$1`; PostgreSQL's typed columns
//! are read into the same values (a boolean as 0 or 1).

use postgres::types::{ToSql, Type};
use rusqlite::types::Value as V;

use super::error::{Result, StoreError};
use super::open::Store;
use super::pg::PgStore;

/// A connection either store gives.
pub(super) trait Sql {
    /// Runs a statement; returns the rows it changed.
    fn exec(&mut self, sql: &str, args: &[V]) -> Result<u64>;
    /// Runs a query; returns its rows.
    fn rows(&mut self, sql: &str, args: &[V]) -> Result<Vec<Cells>>;
    /// Runs a query and hands its rows to `f` one at a time, never all in memory at once
    /// (the report's day rows of a fleet).
    fn each(&mut self, sql: &str, args: &[V], f: &mut dyn FnMut(Cells) -> Result<()>)
    -> Result<()>;
    /// Runs transaction control (`BEGIN IMMEDIATE`, `COMMIT`, `ROLLBACK`): no values, no rows.
    fn control(&mut self, sql: &str) -> Result<()>;
    /// Which store this is (a file's path, a database's target), for messages and for state
    /// kept per store.
    fn label(&self) -> &str;
}

/// Runs `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
pub(super) fn in_transaction<S: Sql + ?Sized, T>(
    conn: &mut S,
    f: impl FnOnce(&mut S) -> Result<T>,
) -> Result<T> {
    // IMMEDIATE (SQLite): the write lock at once, so two writers never deadlock upgrading
    // a read lock; PostgreSQL has no such form and needs none.
    conn.control("BEGIN")?;
    match f(conn) {
        Ok(v) => {
            conn.control("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.control("ROLLBACK");
            Err(e)
        }
    }
}

/// One row's values, read by column index.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cells(pub(super) Vec<V>);

impl Cells {
    fn at(&self, i: usize) -> Result<&V> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Invalid(format!("column {i} missing from the row")))
    }

    /// A text column that may be NULL.
    pub(super) fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.at(i)? {
            V::Null => Ok(None),
            V::Text(t) => Ok(Some(t.clone())),
            other => Err(StoreError::Invalid(format!(
                "column {i}: text expected, found {other:?}"
            ))),
        }
    }

    /// A text column.
    pub(super) fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::Invalid(format!("column {i}: NULL where text is required")))
    }

    /// An integer column that may be NULL.
    pub(super) fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.at(i)? {
            V::Null => Ok(None),
            V::Integer(n) => Ok(Some(*n)),
            other => Err(StoreError::Invalid(format!(
                "column {i}: integer expected, found {other:?}"
            ))),
        }
    }

    /// A real column that may be NULL (an integer read as its value).
    pub(super) fn opt_real(&self, i: usize) -> Result<Option<f64>> {
        match self.at(i)? {
            V::Null => Ok(None),
            V::Real(r) => Ok(Some(*r)),
            V::Integer(n) => Ok(Some(*n as f64)),
            other => Err(StoreError::Invalid(format!(
                "column {i}: number expected, found {other:?}"
            ))),
        }
    }

    /// An integer column.
    pub(super) fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?.ok_or_else(|| {
            StoreError::Invalid(format!("column {i}: NULL where a number is required"))
        })
    }
}

/// `$1` -> `?1`: SQLite's numbered placeholder (a `$` followed by digits only; `'$.x'` JSON
/// paths stay as they are).
fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

impl Sql for Store {
    fn label(&self) -> &str {
        &self.path
    }
    fn exec(&mut self, sql: &str, args: &[V]) -> Result<u64> {
        let sql = sqlite_placeholders(sql);
        let n = self
            .conn
            .execute(&sql, rusqlite::params_from_iter(args.iter()))
            .map_err(|e| self.sq(e))?;
        Ok(n as u64)
    }

    fn rows(&mut self, sql: &str, args: &[V]) -> Result<Vec<Cells>> {
        let sql = sqlite_placeholders(sql);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sq(e))?;
        let width = stmt.column_count();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                (0..width)
                    .map(|i| r.get::<_, V>(i))
                    .collect::<rusqlite::Result<Vec<V>>>()
                    .map(Cells)
            })
            .map_err(|e| self.sq(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.sq(e))
    }

    fn each(
        &mut self,
        sql: &str,
        args: &[V],
        f: &mut dyn FnMut(Cells) -> Result<()>,
    ) -> Result<()> {
        let sql = sqlite_placeholders(sql);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.sq(e))?;
        let width = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args.iter()))
            .map_err(|e| self.sq(e))?;
        while let Some(r) = rows.next().map_err(|e| self.sq(e))? {
            let cells = (0..width)
                .map(|i| r.get::<_, V>(i))
                .collect::<rusqlite::Result<Vec<V>>>()
                .map_err(|e| self.sq(e))?;
            f(Cells(cells))?;
        }
        Ok(())
    }

    fn control(&mut self, sql: &str) -> Result<()> {
        let sql = if sql == "BEGIN" {
            "BEGIN IMMEDIATE"
        } else {
            sql
        };
        self.conn.execute_batch(sql).map_err(|e| self.sq(e))
    }
}

/// A value as PostgreSQL takes it (integers as BIGINT, reals as DOUBLE PRECISION).
fn pg_arg(v: &V) -> Box<dyn ToSql + Sync> {
    match v {
        V::Integer(i) => Box::new(*i),
        V::Text(t) => Box::new(t.clone()),
        V::Real(r) => Box::new(*r),
        V::Null => Box::new(Option::<String>::None),
        V::Blob(b) => Box::new(b.clone()),
    }
}

/// One PostgreSQL column as a value.
fn pg_cell(row: &postgres::Row, i: usize) -> std::result::Result<V, postgres::Error> {
    let ty = row.columns()[i].type_().clone();
    Ok(match ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)?
            .map_or(V::Null, V::Integer),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map_or(V::Null, |n| V::Integer(i64::from(n))),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map_or(V::Null, |n| V::Integer(i64::from(n))),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map_or(V::Null, |b| V::Integer(i64::from(b))),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map_or(V::Null, V::Real),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(i)?
            .map_or(V::Null, V::Blob),
        _ => row
            .try_get::<_, Option<String>>(i)?
            .map_or(V::Null, V::Text),
    })
}

impl Sql for PgStore {
    fn label(&self) -> &str {
        &self.label
    }
    fn exec(&mut self, sql: &str, args: &[V]) -> Result<u64> {
        let boxed: Vec<_> = args.iter().map(pg_arg).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        self.client.execute(sql, &refs).map_err(|e| self.pg(e))
    }

    fn rows(&mut self, sql: &str, args: &[V]) -> Result<Vec<Cells>> {
        let boxed: Vec<_> = args.iter().map(pg_arg).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        let rows = self.client.query(sql, &refs).map_err(|e| self.pg(e))?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| pg_cell(r, i))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map(Cells)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.pg(e))
    }

    fn each(
        &mut self,
        sql: &str,
        args: &[V],
        f: &mut dyn FnMut(Cells) -> Result<()>,
    ) -> Result<()> {
        use postgres::fallible_iterator::FallibleIterator;
        let label = self.label.clone();
        let pg = |source| StoreError::Postgres {
            target: label.clone(),
            source,
        };
        let boxed: Vec<_> = args.iter().map(pg_arg).collect();
        let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        let mut it = self.client.query_raw(sql, refs).map_err(pg)?;
        while let Some(r) = it.next().map_err(pg)? {
            let cells = (0..r.len())
                .map(|i| pg_cell(&r, i))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(pg)?;
            f(Cells(cells))?;
        }
        Ok(())
    }

    fn control(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).map_err(|e| self.pg(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_placeholders_become_sqlite_ones_and_json_paths_stay() {
        assert_eq!(
            sqlite_placeholders("SELECT json_extract(j, '$.a') FROM t WHERE a = $1 AND b = $12"),
            "SELECT json_extract(j, '$.a') FROM t WHERE a = ?1 AND b = ?12"
        );
    }
}
