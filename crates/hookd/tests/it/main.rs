//! hookd's integration suite: the real server on port 0, a real receiver on 127.0.0.1.

mod child;
mod harness;
mod receiver;

mod api_errors;
mod asymmetric;
mod catchup;
mod certify;
mod controls;
mod dashboard;
mod delivery;
mod devtools;
mod durability;
mod feed;
mod filtering;
mod health;
mod idempotency;
mod logs;
mod multi_node;
mod openapi;
mod operational;
mod operations;
mod payload_schemas;
mod portal;
mod postgres_restart;
mod recover;
mod retention;
mod retries;
mod rotation;
mod secrets_at_rest;
mod security;
mod send_example;
mod store_conformance;
mod store_dashboard;
mod tokens;
mod upgrade;
