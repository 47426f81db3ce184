//! The receiver kit's integration tests, one binary: known answers, properties, the axum
//! extractor, and the inbox on SQLite and PostgreSQL.

mod extractor;
mod inbox;
mod properties;
mod vectors;
