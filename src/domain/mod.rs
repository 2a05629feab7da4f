//! Types that are valid by construction. No I/O happens here: `api` builds
//! these from requests, `store` reads and writes them.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod consent;
pub mod erasure;
pub mod ids;
pub mod keyring;
pub mod network;
pub mod page;
pub mod preference;
pub mod receipt;
pub mod site;
pub mod validation;
pub mod web;
