//! The HTTP/1.1 codec of terminus-actors, compiled on its own for fuzzing.
//!
//! `actors/src/http1/` is protocol code with no dependency outside itself
//! (httparse and thiserror only), so it is included here by path instead of
//! depending on the whole engine: a sanitizer build of actix, rustls and
//! aws-lc would take many minutes and add nothing to what is fuzzed.
#![allow(dead_code, unused_imports)]

#[path = "../../actors/src/http1/mod.rs"]
pub mod http1;
