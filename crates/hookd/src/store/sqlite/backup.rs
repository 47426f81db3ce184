//! `hookd backup`: a consistent copy of a live SQLite database.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::connection::db_error;
use crate::store::{StoreError, StoreResult};

/// Copies the database at `source` to `target` while hookd may be serving from it.
///
/// `VACUUM INTO` reads one snapshot of the database (in WAL mode the server's writes go on
/// beside it and are not in the copy) and writes it as a compact file of its own, without a
/// WAL. The copy is made under a temporary name, checked (`PRAGMA quick_check`), flushed to
/// disk and only then renamed to `target`, so a `target` that exists is always whole.
pub fn backup(source: &Path, target: &Path) -> StoreResult<()> {
    if target.exists() {
        return Err(StoreError::Database(format!(
            "{} already exists: give a new file name, a backup never overwrites",
            target.display()
        )));
    }
    if !source.exists() {
        return Err(StoreError::Database(format!(
            "there is no database at {}",
            source.display()
        )));
    }
    let partial = partial_name(target);
    let _ = std::fs::remove_file(&partial);
    let copied = copy_snapshot(source, &partial).and_then(|()| check(&partial));
    if let Err(err) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(err);
    }
    std::fs::rename(&partial, target).map_err(|e| io_error("rename the copy", &e))?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the folder's entry is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("flush the folder", &e))?;
    }
    Ok(())
}

fn copy_snapshot(source: &Path, partial: &Path) -> StoreResult<()> {
    let conn = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(db_error)?;
    let target = partial
        .to_str()
        .ok_or_else(|| StoreError::Database("the backup path is not valid UTF-8".into()))?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(db_error)?;
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error("flush the copy", &e))
}

/// The copy must be a sound database before it takes the backup's name.
fn check(partial: &Path) -> StoreResult<()> {
    let conn =
        Connection::open_with_flags(partial, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db_error)?;
    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(db_error)?;
    if verdict != "ok" {
        return Err(StoreError::Database(format!(
            "the copy failed its check: {verdict}"
        )));
    }
    Ok(())
}

fn partial_name(target: &Path) -> std::path::PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".partial");
    name.into()
}

fn io_error(what: &str, err: &std::io::Error) -> StoreError {
    StoreError::Database(format!("cannot {what}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_never_overwrites_and_leaves_nothing_half_written() {
        let dir = tempfile::tempdir().expect("dir");
        let source = dir.path().join("live.db");
        let conn = Connection::open(&source).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);",
        )
        .expect("fill");
        let target = dir.path().join("copy.db");
        backup(&source, &target).expect("backup");
        let copy = Connection::open(&target).expect("copy");
        let rows: i64 = copy
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 2);
        assert!(backup(&source, &target).is_err(), "overwrote a backup");
        let missing = dir.path().join("nothing.db");
        assert!(backup(&missing, &dir.path().join("other.db")).is_err());
        assert!(!partial_name(&target).exists());
        assert!(!dir.path().join("other.db").exists());
    }
}
