//! Tools for developers and demos: `hookd trigger`, `hookd listen` and `hookd demo`.

pub mod listen;
pub mod trigger;
