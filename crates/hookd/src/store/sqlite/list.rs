//! Keyset pagination shared by every list query.

use rusqlite::types::Value;
use rusqlite::{Connection, Row};

use super::connection::db_error;
use crate::store::{Order, PageRequest, StoreResult};

/// A `SELECT … WHERE …` being assembled from optional filters.
pub struct ListQuery {
    sql: String,
    params: Vec<Value>,
}

impl ListQuery {
    /// `base` is a complete `SELECT … WHERE <scope>` with `?` placeholders for `params`.
    pub fn new(base: &str, params: Vec<Value>) -> Self {
        Self {
            sql: base.to_string(),
            params,
        }
    }

    /// Adds `AND <condition>` with one `?` bound to `value`.
    pub fn and(&mut self, condition: &str, value: impl Into<Value>) -> &mut Self {
        self.sql.push_str(" AND ");
        self.sql.push_str(condition);
        self.params.push(value.into());
        self
    }

    /// Adds `AND <condition>` with its `?`s bound to `values` in order.
    pub fn and_all(&mut self, condition: &str, values: Vec<Value>) -> &mut Self {
        self.sql.push_str(" AND ");
        self.sql.push_str(condition);
        self.params.extend(values);
        self
    }

    /// Adds `AND <column> IN (…)`.
    pub fn and_in(&mut self, column: &str, values: &[String]) -> &mut Self {
        let marks = vec!["?"; values.len()].join(", ");
        self.sql.push_str(&format!(" AND {column} IN ({marks})"));
        self.params.extend(values.iter().cloned().map(Value::Text));
        self
    }

    /// Runs the query for one page, ordered by `column` (which must be unique), fetching one
    /// row more than the limit so the caller can tell whether more follow.
    pub fn fetch<T>(
        mut self,
        conn: &Connection,
        page: &PageRequest,
        column: &str,
        map: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<Vec<T>> {
        // Paging backwards walks the opposite direction and flips the rows afterwards.
        let ascending = (page.order == Order::Ascending) != page.backwards;
        if let Some(cursor) = &page.cursor {
            let op = if ascending { ">" } else { "<" };
            self.and(&format!("{column} {op} ?"), cursor.clone());
        }
        let direction = if ascending { "ASC" } else { "DESC" };
        self.sql
            .push_str(&format!(" ORDER BY {column} {direction} LIMIT ?"));
        self.params.push(Value::Integer(page.limit as i64 + 1));
        let mut statement = conn.prepare_cached(&self.sql).map_err(db_error)?;
        let mut rows = statement
            .query_map(rusqlite::params_from_iter(self.params.iter()), |row| {
                map(row)
            })
            .map_err(db_error)?
            .collect::<rusqlite::Result<Vec<T>>>()
            .map_err(db_error)?;
        if page.backwards {
            rows.reverse();
        }
        Ok(rows)
    }
}
