//! The inbox, the same tests on SQLite (a temporary file) and on PostgreSQL (a fresh database per
//! test on the machine's server, `postgres://postgres@127.0.0.1:5432` unless
//! `HOOKD_TEST_POSTGRES_URL` names another; it is dropped afterwards).

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool, SqlitePool};

fn unix_now() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_secs()).expect("seconds fit")
}

/// Runs `test` on a pool over a new SQLite file.
async fn on_fresh_sqlite<F, Fut>(test: F)
where
    F: FnOnce(SqlitePool) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("consumer.db"))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .expect("open SQLite");
    hookd_receiver::inbox::sqlite::create_table(&pool)
        .await
        .expect("create the inbox");
    let outcome = tokio::spawn(test(pool.clone())).await;
    pool.close().await;
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Runs `test` on a pool over a new PostgreSQL database, dropped afterwards even if it fails.
async fn on_fresh_postgres<F, Fut>(test: F)
where
    F: FnOnce(PgPool) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let server = std::env::var("HOOKD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let name = format!("receiver_inbox_{:016x}", rand_suffix());
    let mut admin = PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {server} is needed for this test: {e}"));
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&format!("{server}/{name}"))
        .await
        .expect("connect to the test database");
    hookd_receiver::inbox::postgres::create_table(&pool)
        .await
        .expect("create the inbox");
    let outcome = tokio::spawn(test(pool.clone())).await;
    pool.close().await;
    sqlx::raw_sql(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop the test database");
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Enough randomness for a database name, without a dependency: the hasher's random keys.
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}

/// The same tests for each backend: `$backend` is the module of `hookd_receiver::inbox` and
/// `$fresh` the function above that gives a pool over an empty database.
macro_rules! conformance {
    ($backend:ident, $fresh:ident) => {
        mod $backend {
            use std::time::Duration;

            use hookd_receiver::inbox::{self, $backend as backend};

            #[tokio::test]
            async fn a_first_delivery_is_recorded_and_a_duplicate_is_not() {
                super::$fresh(|pool| async move {
                    let mut tx = pool.begin().await.expect("begin");
                    assert!(backend::record_once(&mut tx, "msg_1").await.expect("insert"));
                    tx.commit().await.expect("commit");

                    let mut tx = pool.begin().await.expect("begin");
                    assert!(!backend::record_once(&mut tx, "msg_1").await.expect("insert"));
                    assert!(backend::record_once(&mut tx, "msg_2").await.expect("insert"));
                    tx.commit().await.expect("commit");
                })
                .await;
            }

            #[tokio::test]
            async fn a_rolled_back_delivery_leaves_no_trace() {
                super::$fresh(|pool| async move {
                    let mut tx = pool.begin().await.expect("begin");
                    assert!(backend::record_once(&mut tx, "msg_1").await.expect("insert"));
                    // The effect failed: the transaction is dropped without a commit.
                    drop(tx);

                    let mut tx = pool.begin().await.expect("begin");
                    assert!(
                        backend::record_once(&mut tx, "msg_1").await.expect("insert"),
                        "the retry must get a fresh chance"
                    );
                    tx.commit().await.expect("commit");
                })
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_deliveries_of_one_id_apply_once() {
                super::$fresh(|pool| async move {
                    let mut first = pool.begin().await.expect("begin");
                    assert!(backend::record_once(&mut first, "msg_1").await.expect("insert"));
                    // The second delivery arrives while the first is still in its transaction:
                    // it waits on the first, then finds the id.
                    let second = tokio::spawn({
                        let pool = pool.clone();
                        async move {
                            let mut tx = pool.begin().await.expect("begin");
                            let fresh = backend::record_once(&mut tx, "msg_1")
                                .await
                                .expect("insert");
                            tx.commit().await.expect("commit");
                            fresh
                        }
                    });
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    first.commit().await.expect("commit");
                    assert!(!second.await.expect("second delivery"));
                })
                .await;
            }

            #[tokio::test]
            async fn pruning_removes_only_entries_past_the_horizon() {
                super::$fresh(|pool| async move {
                    let four_days_ago = super::unix_now() - 4 * 24 * 60 * 60;
                    sqlx::raw_sql(&format!(
                        "INSERT INTO webhook_inbox (id, received_at) VALUES ('msg_old', {four_days_ago})"
                    ))
                    .execute(&pool)
                    .await
                    .expect("insert an old entry");
                    let mut tx = pool.begin().await.expect("begin");
                    assert!(backend::record_once(&mut tx, "msg_new").await.expect("insert"));
                    tx.commit().await.expect("commit");

                    let pruned = backend::prune(&pool, inbox::DEFAULT_HORIZON)
                        .await
                        .expect("prune");
                    assert_eq!(pruned, 1);

                    let mut tx = pool.begin().await.expect("begin");
                    assert!(backend::record_once(&mut tx, "msg_old").await.expect("insert"));
                    assert!(!backend::record_once(&mut tx, "msg_new").await.expect("insert"));
                    tx.commit().await.expect("commit");
                })
                .await;
            }

            #[tokio::test]
            async fn creating_the_table_twice_is_harmless() {
                super::$fresh(|pool| async move {
                    backend::create_table(&pool).await.expect("create again");
                })
                .await;
            }
        }
    };
}

conformance!(sqlite, on_fresh_sqlite);
conformance!(postgres, on_fresh_postgres);
