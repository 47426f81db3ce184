//! SQLite connections: one writer thread that group-commits, and a small pool of readers.
//!
//! SQLite allows one writer at a time. Rather than let many connections fight over the write
//! lock, every write is a job sent to a single thread that owns the only writing connection.
//! The thread takes whatever jobs are waiting (up to [`MAX_JOBS_PER_COMMIT`]), runs each in its
//! own savepoint inside one `BEGIN IMMEDIATE` transaction, commits once, and only then answers
//! each caller. With `synchronous=FULL` a commit costs an fsync, so sharing it between many
//! jobs is what makes durable ingest fast. A job that fails is rolled back to its savepoint
//! without touching the others.
//!
//! Copying the log back into the database file (a checkpoint) is another thread's work, on its
//! own connection, so the writer does not stop for it: see [`Checkpointer`].

use std::path::{Path, PathBuf};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::store::{StoreError, StoreResult, Taken};

/// The most jobs that share one commit.
const MAX_JOBS_PER_COMMIT: usize = 512;
/// How many writes may wait for the writer before callers are slowed down.
const WRITE_QUEUE_DEPTH: usize = 4096;
/// Concurrent readers.
const READERS: usize = 4;
/// Pages of log after which the writer checkpoints by itself (SQLite's `wal_autocheckpoint`,
/// whose default is 1,000). A backstop: by then the checkpointer has copied most of them.
const WRITER_CHECKPOINT_PAGES: u32 = 4000;
/// The shortest time between two of the checkpointer's checkpoints.
const CHECKPOINT_SPACING: Duration = Duration::from_millis(200);
/// Commits between two nudges of the checkpointer: a few commits are not worth a checkpoint.
const COMMITS_PER_NUDGE: u32 = 32;

const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_initial", include_str!("migrations/0001_initial.sql")),
    (
        "0002_feed_and_payload_validation",
        include_str!("migrations/0002_feed_and_payload_validation.sql"),
    ),
    (
        "0003_ingest_controls",
        include_str!("migrations/0003_ingest_controls.sql"),
    ),
    (
        "0004_endpoint_health",
        include_str!("migrations/0004_endpoint_health.sql"),
    ),
    (
        "0005_delivery_controls",
        include_str!("migrations/0005_delivery_controls.sql"),
    ),
    (
        "0006_claim_index",
        include_str!("migrations/0006_claim_index.sql"),
    ),
    (
        "0007_portal_sessions",
        include_str!("migrations/0007_portal_sessions.sql"),
    ),
    (
        "0008_operator_dashboard",
        include_str!("migrations/0008_operator_dashboard.sql"),
    ),
    (
        "0009_overview_indexes",
        include_str!("migrations/0009_overview_indexes.sql"),
    ),
    (
        "0010_endpoint_checks",
        include_str!("migrations/0010_endpoint_checks.sql"),
    ),
    ("0011_catchup", include_str!("migrations/0011_catchup.sql")),
    (
        "0012_operational_outbox",
        include_str!("migrations/0012_operational_outbox.sql"),
    ),
    (
        "0013_listen_pins",
        include_str!("migrations/0013_listen_pins.sql"),
    ),
];

/// Opens a connection with the settings every hookd connection uses.
fn connect(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(db_error)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA cache_size = -16000;",
    )
    .map_err(db_error)?;
    Ok(conn)
}

/// Applies the migrations that have not run yet, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .map_err(db_error)?;
    refuse_newer_schema(conn)?;
    for (name, sql) in MIGRATIONS {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_error)?;
        let done: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = ?1)",
                [name],
                |row| row.get(0),
            )
            .map_err(db_error)?;
        if !done {
            tx.execute_batch(sql).map_err(db_error)?;
            tx.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)",
                rusqlite::params![name, crate::domain::time::now_millis()],
            )
            .map_err(db_error)?;
        }
        tx.commit().map_err(db_error)?;
    }
    Ok(())
}

/// A database migrated by a newer hookd holds migrations this one does not know: running on it
/// could corrupt what the newer version wrote, so this version refuses to open it.
fn refuse_newer_schema(conn: &Connection) -> StoreResult<()> {
    let mut statement = conn
        .prepare("SELECT name FROM schema_migrations ORDER BY name")
        .map_err(db_error)?;
    let applied = statement
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    let known = |name: &String| MIGRATIONS.iter().any(|(known, _)| known == name);
    match applied.iter().find(|name| !known(name)) {
        Some(unknown) => Err(StoreError::Database(crate::store::newer_schema(unknown))),
        None => Ok(()),
    }
}

/// Maps SQLite errors onto the store's: a unique violation is a conflict, the rest is a
/// database error.
pub fn db_error(err: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(code, _) = &err {
        if code.code == rusqlite::ErrorCode::DiskFull {
            return StoreError::Unavailable("the disk holding the database is full".into());
        }
    }
    if let rusqlite::Error::SqliteFailure(code, Some(message)) = &err {
        if code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
        {
            return Taken::find(UNIQUE_COLUMNS, |column| message.contains(column)).conflict();
        }
    }
    StoreError::Database(err.to_string())
}

/// The tables (and columns) SQLite names in a unique violation's message, each with what it
/// holds; the first that matches wins.
const UNIQUE_COLUMNS: &[(&str, Taken)] = &[
    ("applications.", Taken::AppUid),
    ("endpoints.", Taken::EndpointUid),
    ("event_types.", Taken::EventTypeName),
    ("messages.event_id", Taken::EventId),
    ("messages.", Taken::MessageId),
];

/// A write job: run inside the shared transaction, then told whether the commit held.
trait WriteJob: Send {
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn FnOnce(StoreResult<()>) + Send>;
    fn abort(self: Box<Self>, err: StoreError);
}

struct Job<F, R> {
    work: F,
    reply: oneshot::Sender<StoreResult<R>>,
}

impl<F, R> WriteJob for Job<F, R>
where
    F: FnOnce(&Connection) -> StoreResult<R> + Send,
    R: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn FnOnce(StoreResult<()>) + Send> {
        let outcome = in_savepoint(conn, self.work);
        let reply = self.reply;
        Box::new(move |committed| {
            // The caller may have gone away (a dropped request); its answer is then moot.
            let _ = reply.send(committed.and(outcome));
        })
    }

    fn abort(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err));
    }
}

fn in_savepoint<R>(
    conn: &Connection,
    work: impl FnOnce(&Connection) -> StoreResult<R>,
) -> StoreResult<R> {
    conn.execute_batch("SAVEPOINT job").map_err(db_error)?;
    let outcome = work(conn);
    let end = if outcome.is_ok() {
        "RELEASE job"
    } else {
        "ROLLBACK TO job; RELEASE job"
    };
    conn.execute_batch(end).map_err(db_error)?;
    outcome
}

/// The handle through which every write reaches the writer thread.
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn WriteJob>>,
    /// Why the last write could not be made (a full disk), until a write succeeds again: what
    /// the health check reports, since reads go on working meanwhile.
    refused: Arc<Mutex<Option<String>>>,
}

impl Writer {
    /// Starts the writer thread on its own connection.
    pub fn start(path: &Path) -> StoreResult<Self> {
        let mut conn = connect(path)?;
        migrate(&mut conn)?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .map_err(db_error)?;
        let checkpointer = Checkpointer::start(path)?;
        let (jobs, queue) = mpsc::channel(WRITE_QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("hookd-sqlite-writer".into())
            .spawn(move || write_loop(&conn, queue, &checkpointer))
            .map_err(|e| StoreError::Database(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            jobs,
            refused: Arc::default(),
        })
    }

    /// Why writes fail now, if they do (see [`StoreError::Unavailable`]).
    pub fn refused(&self) -> Option<String> {
        self.refused.lock().ok().and_then(|r| r.clone())
    }

    /// Runs `work` in the next group commit and answers once it is durable.
    pub async fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(Job { work, reply });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Database("the SQLite writer has stopped".into()))?;
        let outcome = answer
            .await
            .map_err(|_| StoreError::Database("the SQLite writer has stopped".into()))?;
        if let Ok(mut refused) = self.refused.lock() {
            match &outcome {
                Err(StoreError::Unavailable(reason)) => *refused = Some(reason.clone()),
                Ok(_) => *refused = None,
                Err(_) => {}
            }
        }
        outcome
    }
}

/// The writer thread: ends when every [`Writer`] handle is dropped.
fn write_loop(
    conn: &Connection,
    mut queue: mpsc::Receiver<Box<dyn WriteJob>>,
    checkpointer: &Checkpointer,
) {
    while let Some(first) = queue.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_JOBS_PER_COMMIT {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE").map_err(db_error) {
            batch.into_iter().for_each(|job| job.abort(err.clone()));
            continue;
        }
        let replies: Vec<_> = batch.into_iter().map(|job| job.run(conn)).collect();
        let committed = conn.execute_batch("COMMIT").map_err(db_error);
        if committed.is_err() {
            // Leave no half-open transaction behind for the next batch.
            let _ = conn.execute_batch("ROLLBACK");
        } else {
            checkpointer.committed();
        }
        replies
            .into_iter()
            .for_each(|reply| reply(committed.clone()));
    }
}

/// Copies the log back into the database file on a thread of its own.
///
/// Left to SQLite, the connection that commits runs the checkpoint whenever the log passes
/// 1,000 pages: the writer would stop for it (copying the pages, syncing the database file),
/// and every caller waiting for the next group commit with it. Here the writer only nudges
/// this thread every few commits; it checkpoints (`PASSIVE`: it never blocks the writer or
/// the readers) at most every [`CHECKPOINT_SPACING`] while commits go on, and not at all when
/// none do. The writer's own checkpoint stays as a backstop at [`WRITER_CHECKPOINT_PAGES`]:
/// SQLite starts the log over only once every page in it was copied, which a checkpoint
/// running beside a busy writer rarely achieves, and the writer's, which finds nearly all
/// pages copied, does quickly.
struct Checkpointer {
    nudges: std_mpsc::SyncSender<()>,
    /// Commits since the last nudge (only the writer thread counts).
    commits: std::cell::Cell<u32>,
}

impl Checkpointer {
    /// Starts the thread; it ends when the checkpointer is dropped (with the writer thread).
    fn start(path: &Path) -> StoreResult<Self> {
        let conn = connect(path)?;
        let (nudges, nudged) = std_mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("hookd-sqlite-checkpointer".into())
            .spawn(move || {
                while nudged.recv().is_ok() {
                    if let Err(err) =
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(%err, "checkpointing the SQLite log failed");
                    }
                    std::thread::sleep(CHECKPOINT_SPACING);
                }
            })
            .map_err(|e| {
                StoreError::Database(format!("cannot start the checkpointer thread: {e}"))
            })?;
        Ok(Self {
            nudges,
            commits: std::cell::Cell::new(0),
        })
    }

    /// Counts a commit, and every [`COMMITS_PER_NUDGE`] tells the thread that the log grew.
    /// Never waits: a nudge already pending covers this one.
    fn committed(&self) {
        let commits = self.commits.get() + 1;
        if commits < COMMITS_PER_NUDGE {
            self.commits.set(commits);
            return;
        }
        self.commits.set(0);
        let _ = self.nudges.try_send(());
    }
}

/// A few read-only connections; reads never wait for the writer under WAL.
pub struct Readers {
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    pub fn open(path: &Path) -> StoreResult<Arc<Self>> {
        let idle = (0..READERS)
            .map(|_| {
                let conn = connect(path)?;
                conn.execute_batch("PRAGMA query_only = ON")
                    .map_err(db_error)?;
                Ok(conn)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Arc::new(Self {
            idle: Mutex::new(idle),
            permits: Arc::new(Semaphore::new(READERS)),
        }))
    }

    /// Runs `work` on an idle reader, off the async threads.
    pub async fn run<R: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Connection) -> StoreResult<R> + Send + 'static,
    ) -> StoreResult<R> {
        let closed = || StoreError::Database("the reader pool is closed".into());
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| closed())?;
        // A permit guarantees an idle connection; it travels with the connection so that a
        // caller who gives up waiting cannot let a second reader take a connection in use.
        let conn = self.take().ok_or_else(closed)?;
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let outcome = work(&conn);
            readers.give_back(conn);
            drop(permit);
            outcome
        })
        .await
        .map_err(|e| StoreError::Database(format!("a read task failed: {e}")))?
    }

    fn take(&self) -> Option<Connection> {
        self.idle.lock().ok()?.pop()
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
    }
}

/// Holds an exclusive lock on `<database>.lock` for the life of the process, so two hookd
/// processes never share one SQLite file (its leases assume a single node).
pub struct ProcessLock {
    _file: std::fs::File,
}

impl ProcessLock {
    pub fn acquire(db_path: &Path) -> StoreResult<Self> {
        let mut lock_path = PathBuf::from(db_path);
        lock_path.as_mut_os_string().push(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                StoreError::Database(format!("cannot open {}: {e}", lock_path.display()))
            })?;
        file.try_lock().map_err(|_| {
            StoreError::Locked(format!(
                "another hookd process is using {}; SQLite serves one node (use PostgreSQL for several)",
                db_path.display()
            ))
        })?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_pages(path: &Path) -> u64 {
        std::fs::metadata(path).expect("the database file").len() / 4096
    }

    /// Commits far below both the writer's backstop and SQLite's own threshold reach the
    /// database file: only the checkpointer thread copies them there.
    #[tokio::test]
    async fn the_checkpointer_copies_commits_into_the_database_file() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("hookd.db");
        let writer = Writer::start(&path).expect("the writer starts");
        writer
            .run(|conn| {
                conn.execute_batch("CREATE TABLE filler (b BLOB)")
                    .map_err(db_error)
            })
            .await
            .expect("a table");
        let before = file_pages(&path);

        // About 300 pages of log in 100 commits: the checkpointer is nudged three times.
        for _ in 0..100 {
            writer
                .run(|conn| {
                    for _ in 0..3 {
                        conn.execute("INSERT INTO filler VALUES (zeroblob(4000))", [])
                            .map_err(db_error)?;
                    }
                    Ok(())
                })
                .await
                .expect("a commit");
        }

        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while file_pages(&path) < before + 200 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file stayed at {} pages ({before} before the commits): \
                 nothing checkpointed the log",
                file_pages(&path)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
