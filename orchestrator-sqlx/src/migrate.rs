//! The embedded migrations, one directory per database.

use sqlx::migrate::Migrator;

/// PostgreSQL schema (`migrations/postgres`).
pub static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// SQLite schema (`migrations/sqlite`).
pub static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
