//! The schema of [`PostgresStore`](super::PostgresStore): `migrations/postgres/NNNN_*.sql`,
//! embedded in the binary and applied in order when a store connects.
//!
//! Replicas that start together must not apply a migration twice or see a half-built schema, so
//! every check and every migration runs in one transaction that first takes a transaction-level
//! advisory lock: the first replica migrates, the others wait for its commit and then find nothing
//! to do. PostgreSQL's DDL is transactional, so a failed migration leaves the database as it was.
//! `noteflow_schema_migrations` records the versions applied.

use tokio_postgres::Client;

use crate::BoxError;

/// The schema, one migration per entry, applied in order. Never edit an entry once released: add
/// one (a tenant column, say).
pub(super) const MIGRATIONS: &[&str] = &[include_str!("../../migrations/postgres/0001_init.sql")];

/// The advisory lock key that serialises migrations: "noteflow" in ASCII.
const MIGRATION_LOCK: i64 = 0x6e6f_7465_666c_6f77;

/// Brings the database to the latest schema version. Refuses a database whose version is newer
/// than this build knows (migrated by a newer noteflow).
pub(super) async fn migrate(client: &mut Client) -> Result<(), BoxError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS noteflow_schema_migrations (\
             version    integer     NOT NULL PRIMARY KEY, \
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM noteflow_schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let known = MIGRATIONS.len();
    let applied = usize::try_from(applied)
        .map_err(|_| format!("the database has an invalid schema version ({applied})"))?;
    if applied > known {
        return Err(format!(
            "the database has schema version {applied}, but this noteflow only knows versions up to \
             {known}: it was migrated by a newer noteflow. Upgrade noteflow, or use another database"
        )
        .into());
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let target = i32::try_from(index + 1)?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| format!("migration to schema version {target} failed: {e}"))?;
        tx.execute(
            "INSERT INTO noteflow_schema_migrations (version) VALUES ($1)",
            &[&target],
        )
        .await?;
        tracing::info!(version = target, "applied PostgreSQL migration");
    }
    tx.commit().await?;
    Ok(())
}
