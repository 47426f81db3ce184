//! End-to-end tests of the reference consumer: signed by hand (`direct`), and delivered by a real
//! hookd process (`through_hookd`). Every server runs on 127.0.0.1 with port 0 or a free port.

mod direct;
mod through_hookd;

use hookd_receiver::{Secret, Verifier};
use sqlx::SqlitePool;
use tokio::sync::oneshot;

/// The consumer app, served on a free port over a fresh SQLite file.
pub struct Consumer {
    pub url: String,
    pub pool: SqlitePool,
    pub client: reqwest::Client,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

/// A listener bound now, so its address can be given out before the app is built.
pub struct Bound {
    listener: tokio::net::TcpListener,
    pub url: String,
}

pub async fn bind() -> Bound {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    Bound { listener, url }
}

impl Bound {
    /// Serves the consumer app, verifying with `secrets`.
    pub async fn serve(self, secrets: &[&str]) -> Consumer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("consumer.db").display());
        let pool = payments_consumer::connect(&url)
            .await
            .expect("open the consumer database");
        let verifier = Verifier::new(secrets).expect("valid secrets");
        let app = payments_consumer::app(pool.clone(), verifier);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(self.listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("consumer serves");
        });
        Consumer {
            url: self.url,
            pool,
            client: reqwest::Client::new(),
            _dir: dir,
            stop: Some(stop),
        }
    }
}

pub async fn spawn_consumer(secret: &Secret) -> Consumer {
    bind().await.serve(&[&secret.expose()]).await
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Consumer {
    /// `GET /payments/{id}`: the JSON view, or `None` on 404.
    pub async fn payment(&self, id: &str) -> Option<serde_json::Value> {
        let response = self
            .client
            .get(format!("{}/payments/{id}", self.url))
            .send()
            .await
            .expect("consumer answers");
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(response.status().is_success(), "{}", response.status());
        Some(response.json().await.expect("JSON"))
    }

    /// The status of payment `id`, as `GET /payments/{id}` shows it.
    pub async fn status(&self, id: &str) -> Option<String> {
        self.payment(id)
            .await
            .map(|p| p["status"].as_str().expect("status").to_owned())
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }
}

/// A payment event in the platform's shape.
pub fn event(kind: &str, payment: &str, status: &str, at: &str) -> String {
    serde_json::json!({
        "event": kind,
        "timestamp": at,
        "data": {
            "paymentId": payment,
            "status": status,
            "amount": 4999,
            "currency": "EUR",
            "orderId": format!("ord_{payment}"),
        }
    })
    .to_string()
}
