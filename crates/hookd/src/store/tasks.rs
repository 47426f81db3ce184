//! How one batch of a background task is decided, as pure functions. Each backend reads a
//! running task's [`Progress`], asks what the batch does, runs the batch's SQL, and records
//! the [`Conclusion`], all in one transaction.
//!
//! The rules:
//! - A task whose endpoint was deleted or disabled fails.
//! - A task waits while deliveries of its previous batch are still due or in flight, so a
//!   large recovery never floods the queue ahead of other endpoints.
//! - Otherwise a batch makes up to `limit` failed deliveries due, in message id order after
//!   the cursor, and moves the cursor to the last of them; a batch shorter than the limit
//!   finishes the task.

use crate::domain::ids::{lower_bound_at, IdPrefix};
use crate::domain::{AppId, EndpointId, TaskId};

use super::{StoreError, StoreResult, TaskBatch, TaskKind, TaskStatus};

/// Running tasks looked at per batch, least recently advanced first.
pub const CANDIDATES: i64 = 16;

/// Where a running task stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub id: TaskId,
    pub app_id: AppId,
    pub endpoint_id: EndpointId,
    /// Message ids of the window: from `start` (included) to `end` (excluded).
    pub start: String,
    pub end: String,
    /// The last message id made due, and the one before the batch that reached it.
    pub cursor: Option<String>,
    pub batch_after: Option<String>,
}

impl Progress {
    /// A task's progress from its stored columns; the window is stored as creation times
    /// (unix ms), which bound message ids because ids sort by time.
    pub fn new(
        id: TaskId,
        app_id: AppId,
        endpoint_id: EndpointId,
        window: (i64, i64),
        cursor: Option<String>,
        batch_after: Option<String>,
    ) -> Self {
        Self {
            id,
            app_id,
            endpoint_id,
            start: lower_bound_at(IdPrefix::Message, window.0),
            end: lower_bound_at(IdPrefix::Message, window.1),
            cursor,
            batch_after,
        }
    }

    /// The messages after which failed deliveries are looked for: the cursor, or the window's
    /// start.
    pub fn after(&self) -> &str {
        self.cursor.as_deref().unwrap_or("")
    }

    /// The range of the previous batch, `(batch_after, cursor]`, when there was one: a
    /// backend checks it for deliveries still due or in flight before the next batch.
    pub fn previous_batch(&self) -> Option<(&str, &str)> {
        let cursor = self.cursor.as_deref()?;
        Some((self.batch_after.as_deref().unwrap_or(""), cursor))
    }
}

/// What the first look at a task decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// The endpoint is gone or disabled: the task fails.
    Fail,
    /// The previous batch still has work: the task waits.
    Wait,
    /// The task may run a batch.
    Run,
}

/// Decides whether a task runs, given whether its endpoint exists and is enabled (`None` when
/// it is gone) and whether its previous batch still has deliveries due or in flight.
pub fn gate(endpoint_enabled: Option<bool>, previous_batch_busy: bool) -> Gate {
    if endpoint_enabled != Some(true) {
        Gate::Fail
    } else if previous_batch_busy {
        Gate::Wait
    } else {
        Gate::Run
    }
}

/// What a batch records on its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conclusion {
    pub batch: TaskBatch,
    /// The cursor the batch started from, kept to tell when its range is done.
    pub batch_after: Option<String>,
    /// The new cursor: the last message made due, or the old cursor when none was.
    pub cursor: Option<String>,
}

impl Progress {
    /// The conclusion of a task that fails.
    pub fn fail(&self) -> Conclusion {
        self.conclude(&[], TaskStatus::Failed)
    }

    /// The conclusion of a batch that made the deliveries of `made` (message ids, in any
    /// order) due, out of at most `limit`.
    pub fn advance(&self, made: &[String], limit: usize) -> Conclusion {
        let status = if made.len() < limit {
            TaskStatus::Finished
        } else {
            TaskStatus::Running
        };
        self.conclude(made, status)
    }

    fn conclude(&self, made: &[String], status: TaskStatus) -> Conclusion {
        Conclusion {
            batch: TaskBatch {
                task_id: self.id.clone(),
                made_due: made.len() as u64,
                status,
            },
            batch_after: self.cursor.clone(),
            cursor: made.iter().max().cloned().or_else(|| self.cursor.clone()),
        }
    }
}

/// Reads a task's stored kind and status.
pub fn kind_and_status(kind: &str, status: &str) -> StoreResult<(TaskKind, TaskStatus)> {
    match (TaskKind::parse(kind), TaskStatus::parse(status)) {
        (Some(kind), Some(status)) => Ok((kind, status)),
        _ => Err(StoreError::Database(format!(
            "background task with unknown kind {kind:?} or status {status:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(cursor: Option<&str>, batch_after: Option<&str>) -> Progress {
        Progress {
            id: "task_1".into(),
            app_id: "app_1".into(),
            endpoint_id: "ep_1".into(),
            start: "msg_0".into(),
            end: "msg_9".into(),
            cursor: cursor.map(str::to_string),
            batch_after: batch_after.map(str::to_string),
        }
    }

    #[test]
    fn a_task_fails_without_its_endpoint_and_waits_for_its_previous_batch() {
        assert_eq!(gate(None, false), Gate::Fail);
        assert_eq!(gate(Some(false), true), Gate::Fail);
        assert_eq!(gate(Some(true), true), Gate::Wait);
        assert_eq!(gate(Some(true), false), Gate::Run);
    }

    #[test]
    fn the_first_batch_has_no_previous_range() {
        assert_eq!(progress(None, None).previous_batch(), None);
        assert_eq!(progress(None, None).after(), "");
        assert_eq!(
            progress(Some("msg_4"), None).previous_batch(),
            Some(("", "msg_4"))
        );
        assert_eq!(
            progress(Some("msg_4"), Some("msg_2")).previous_batch(),
            Some(("msg_2", "msg_4"))
        );
    }

    #[test]
    fn a_full_batch_moves_the_cursor_and_keeps_running() {
        let task = progress(Some("msg_2"), Some("msg_1"));
        let made = vec!["msg_4".to_string(), "msg_3".to_string()];
        let c = task.advance(&made, 2);
        assert_eq!(c.batch.status, TaskStatus::Running);
        assert_eq!(c.batch.made_due, 2);
        assert_eq!(c.cursor.as_deref(), Some("msg_4"));
        assert_eq!(c.batch_after.as_deref(), Some("msg_2"));
    }

    #[test]
    fn a_short_batch_finishes_and_an_empty_one_keeps_the_cursor() {
        let task = progress(Some("msg_2"), None);
        let c = task.advance(&[], 2);
        assert_eq!(c.batch.status, TaskStatus::Finished);
        assert_eq!(c.cursor.as_deref(), Some("msg_2"));
        let c = task.fail();
        assert_eq!(c.batch.status, TaskStatus::Failed);
        assert_eq!(c.batch.made_due, 0);
        assert_eq!(c.cursor.as_deref(), Some("msg_2"));
    }

    #[test]
    fn unknown_kinds_and_statuses_are_errors() {
        assert!(kind_and_status("endpoint.recover", "running").is_ok());
        assert!(kind_and_status("endpoint.explode", "running").is_err());
        assert!(kind_and_status("endpoint.recover", "sleeping").is_err());
    }
}
