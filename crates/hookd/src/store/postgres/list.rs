//! Keyset pagination shared by every list query.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder};

use super::connection::db_error;
use crate::store::{Order, PageRequest, StoreResult};

/// A `SELECT … WHERE …` being assembled from optional filters.
pub struct ListQuery<'a> {
    builder: QueryBuilder<'a, Postgres>,
}

impl<'a> ListQuery<'a> {
    /// `base` is the start of a `SELECT … WHERE …`; filters follow with [`bind`](Self::bind)
    /// and [`push`](Self::push), each starting with ` AND `.
    pub fn new(base: &str) -> Self {
        Self {
            builder: QueryBuilder::new(base),
        }
    }

    /// Appends `sql` followed by one bound `value`.
    pub fn bind<T>(&mut self, sql: &str, value: T) -> &mut Self
    where
        T: 'a + sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres> + Send,
    {
        self.builder.push(sql);
        self.builder.push_bind(value);
        self
    }

    /// Appends plain SQL.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.builder.push(sql);
        self
    }

    /// Runs the query for one page, ordered by `column` (which must be unique), fetching one
    /// row more than the limit so the caller can tell whether more follow.
    pub async fn fetch<T>(
        mut self,
        pool: &PgPool,
        page: &PageRequest,
        column: &str,
        map: impl Fn(&PgRow) -> sqlx::Result<T>,
    ) -> StoreResult<Vec<T>> {
        // Paging backwards walks the opposite direction and flips the rows afterwards.
        let ascending = (page.order == Order::Ascending) != page.backwards;
        if let Some(cursor) = &page.cursor {
            let op = if ascending { ">" } else { "<" };
            self.builder.push(format!(" AND {column} {op} "));
            self.builder.push_bind(cursor.clone());
        }
        let direction = if ascending { "ASC" } else { "DESC" };
        self.builder
            .push(format!(" ORDER BY {column} {direction} LIMIT "));
        self.builder.push_bind(page.limit as i64 + 1);
        let rows = self
            .builder
            .build()
            .fetch_all(pool)
            .await
            .map_err(db_error)?;
        let mut items = rows
            .iter()
            .map(map)
            .collect::<sqlx::Result<Vec<T>>>()
            .map_err(db_error)?;
        if page.backwards {
            items.reverse();
        }
        Ok(items)
    }
}
