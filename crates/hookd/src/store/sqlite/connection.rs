//! SQLite connections: one writer thread that group-commits, and a small pool of readers.
//!
//! SQLite allows one writer at a time. Rather than let many connections fight over the write
//! lock, every write is a job sent to a single thread that owns the only writing connection.
//! The thread takes whatever jobs are waiting (up to [`MAX_JOBS_PER_COMMIT`]), runs each in its
//! own savepoint inside one `BEGIN IMMEDIATE` transaction, commits once, and only then answers
//! each caller. With `synchronous=FULL` a commit costs an fsync, so sharing it between many
//! jobs is what makes durable ingest fast. A job that fails is rolled back to its savepoint
//! without touching the others.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::store::{StoreError, StoreResult, Taken};

/// The most jobs that share one commit.
const MAX_JOBS_PER_COMMIT: usize = 512;
/// How many writes may wait for the writer before callers are slowed down.
const WRITE_QUEUE_DEPTH: usize = 4096;
/// Concurrent readers.
const READERS: usize = 4;

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
        let (jobs, queue) = mpsc::channel(WRITE_QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("hookd-sqlite-writer".into())
            .spawn(move || write_loop(&conn, queue))
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
fn write_loop(conn: &Connection, mut queue: mpsc::Receiver<Box<dyn WriteJob>>) {
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
        }
        replies
            .into_iter()
            .for_each(|reply| reply(committed.clone()));
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
