//! In-memory implementations of every trait, for tests and for embedding without a database.
//!
//! PLACEHOLDER (being filled in).
