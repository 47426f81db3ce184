//! `limit`/`iterator` paging and the `{data, iterator, prevIterator, done}` answer.

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::domain::ids::is_well_formed_id;
use crate::domain::EventTypeName;
use crate::store::{Order, PageRequest};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 250;

/// Paging parameters as given in the query string.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// How many items to answer, 1 to 250 (default 50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 250)]
    pub limit: Option<String>,
    /// `iterator` or `prevIterator` of the previous page.
    pub iterator: Option<String>,
    /// `ascending` or `descending`.
    #[param(value_type = Option<String>, pattern = "^(ascending|descending)$")]
    pub order: Option<String>,
}

impl PageParams {
    /// Checks the parameters of a list paged by id (every list but the event types');
    /// `default_order` is the list's natural order.
    pub fn parse(&self, default_order: Order) -> Result<PageRequest, ApiError> {
        self.parse_keyed(default_order, is_well_formed_id)
    }

    /// Checks the parameters of a list paged by event type name.
    pub fn parse_by_name(&self, default_order: Order) -> Result<PageRequest, ApiError> {
        self.parse_keyed(default_order, |key| EventTypeName::parse(key).is_ok())
    }

    /// `is_key` says whether text is a key of this list. An iterator is always a key that
    /// hookd answered (or one with `-` before it), so anything else is a mistake of the
    /// caller's: answered as one, not as an empty page that reads like "no more results".
    fn parse_keyed(
        &self,
        default_order: Order,
        is_key: impl Fn(&str) -> bool,
    ) -> Result<PageRequest, ApiError> {
        let limit = parse_limit(self.limit.as_deref())?;
        let order = match self.order.as_deref() {
            None => default_order,
            Some("ascending") => Order::Ascending,
            Some("descending") => Order::Descending,
            Some(_) => {
                return Err(ApiError::invalid(
                    &["query", "order"],
                    "must be ascending or descending",
                ))
            }
        };
        let (cursor, backwards) = match self.iterator.as_deref().filter(|i| !i.is_empty()) {
            None => (None, false),
            Some(text) => match text.strip_prefix('-') {
                Some(before) => (Some(before.to_string()), true),
                None => (Some(text.to_string()), false),
            },
        };
        if cursor.as_deref().is_some_and(|c| !is_key(c)) {
            return Err(ApiError::invalid(
                &["query", "iterator"],
                "is not an iterator of this list: pass the `iterator` or `prevIterator` of a page",
            ));
        }
        Ok(PageRequest {
            limit,
            cursor,
            backwards,
            order,
        })
    }
}

/// `limit` as every list takes it: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
pub fn parse_limit(text: Option<&str>) -> Result<usize, ApiError> {
    match text {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    &["query", "limit"],
                    format!("must be a whole number from 1 to {MAX_LIMIT}"),
                )
            }),
    }
}

/// One page of a list, as every list route answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    pub iterator: Option<String>,
    pub prev_iterator: Option<String>,
    pub done: bool,
}

impl<T> ListResponse<T> {
    /// Builds the answer from the store's rows (which hold one extra row when more follow).
    pub fn build<R>(
        mut rows: Vec<R>,
        page: &PageRequest,
        key: impl Fn(&R) -> String,
        out: impl Fn(R) -> T,
    ) -> Self {
        let more = rows.len() > page.limit;
        if more {
            if page.backwards {
                rows.remove(0);
            } else {
                rows.truncate(page.limit);
            }
        }
        let iterator = rows.last().map(&key);
        let prev_iterator = rows.first().map(|r| format!("-{}", key(r)));
        // Going backwards, the next page forwards is where we came from, so only "no more
        // before" can be said; forwards, done means nothing follows.
        let done = if page.backwards { false } else { !more };
        Self {
            data: rows.into_iter().map(out).collect(),
            iterator,
            prev_iterator,
            done,
        }
    }
}
