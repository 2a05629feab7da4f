//! Types that are valid by construction. No I/O happens here: `api` builds
//! these from requests, `store` reads and writes them.
//!
//! Enums here are plain Rust enums without numbers: `api` maps them to and
//! from the proto's numbers, `store` to and from the values it keeps, each
//! with a `match` of its own, so neither contract moves the other.

pub mod audit;
pub mod auth;
pub mod checkpoint;
pub mod clock;
pub mod command;
pub mod consent;
pub mod declared;
pub mod erasure;
pub mod ids;
pub mod keyring;
pub mod merkle;
pub mod network;
pub mod page;
pub mod preference;
pub mod receipt;
pub mod seal;
pub mod site;
pub mod time;
pub mod tlog;
pub mod validation;
pub mod web;
