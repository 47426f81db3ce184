//! Tools for developers and demos: `hookd trigger`, `hookd listen` and `hookd demo`.

pub mod demo;
pub mod listen;
pub mod trigger;
