//! [`HubStore`] on SQLite through sqlx, one database file under the hub's data directory.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use iothub_types::{DeviceId, Message, ModuleId, SystemProperties};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use twin::Twin;

use super::{
    BoxFuture, DeviceCounts, HubStore, IdentityKey, IdentityScope, QueuedC2dMessage, StoredIdentity,
};
use crate::certificates::{CaCertificate, CertificateName};
use crate::error::HubError;
use crate::model::{AccessRights, IdentityRecord, SharedAccessPolicy};

/// The schema, applied on every open. Statements are idempotent and use portable SQL only.
const SCHEMA: [&str; 6] = [
    "CREATE TABLE IF NOT EXISTS identities (
        device_id TEXT NOT NULL,
        module_id TEXT NOT NULL,
        etag TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        record TEXT NOT NULL,
        twin TEXT NOT NULL,
        twin_version BIGINT NOT NULL,
        PRIMARY KEY (device_id, module_id)
    )",
    "CREATE TABLE IF NOT EXISTS policies (
        name TEXT NOT NULL PRIMARY KEY,
        rights TEXT NOT NULL,
        primary_key TEXT NOT NULL,
        secondary_key TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS c2d_messages (
        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
        device_id TEXT NOT NULL,
        enqueued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        delivery_count INTEGER NOT NULL,
        properties TEXT NOT NULL,
        body BLOB NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS c2d_messages_by_device ON c2d_messages (device_id, sequence)",
    "CREATE TABLE IF NOT EXISTS hub_settings (name TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ca_certificates (
        name TEXT NOT NULL PRIMARY KEY,
        etag TEXT NOT NULL,
        record TEXT NOT NULL
    )",
];

/// The registry, twins, policies and C2D queues in one SQLite database (WAL journal, full sync).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// The stored properties of a queued C2D message.
#[derive(Serialize, Deserialize)]
struct StoredC2dProperties {
    system: SystemProperties,
    application: Vec<(String, Option<String>)>,
}

impl SqliteStore {
    /// Opens (creating when missing) the database file at `path` and applies the schema.
    pub async fn open(path: &Path) -> Result<SqliteStore, HubError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        Ok(SqliteStore { pool })
    }

    /// Closes every connection, waiting for them to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn module_key(module_id: Option<&ModuleId>) -> &str {
    module_id.map_or("", ModuleId::as_str)
}

fn decode_identity(row: &SqliteRow) -> Result<StoredIdentity, HubError> {
    let record_text: String = row.try_get("record")?;
    let twin_text: String = row.try_get("twin")?;
    let record: IdentityRecord = serde_json::from_str(&record_text)
        .map_err(|error| HubError::storage(format!("unreadable identity record: {error}")))?;
    let twin = Twin::from_storage_json(&twin_text).map_err(HubError::storage)?;
    Ok(StoredIdentity { record, twin })
}

fn encode_record(record: &IdentityRecord) -> Result<String, HubError> {
    serde_json::to_string(record).map_err(HubError::storage)
}

fn micros(time: DateTime<Utc>) -> i64 {
    time.timestamp_micros()
}

fn from_micros(value: i64) -> Result<DateTime<Utc>, HubError> {
    DateTime::from_timestamp_micros(value)
        .ok_or_else(|| HubError::storage("stored timestamp out of range"))
}

fn decode_c2d(row: &SqliteRow) -> Result<QueuedC2dMessage, HubError> {
    let device_text: String = row.try_get("device_id")?;
    let properties_text: String = row.try_get("properties")?;
    let properties: StoredC2dProperties = serde_json::from_str(&properties_text)
        .map_err(|error| HubError::storage(format!("unreadable c2d properties: {error}")))?;
    let body: Vec<u8> = row.try_get("body")?;
    let delivery_count: i64 = row.try_get("delivery_count")?;
    Ok(QueuedC2dMessage {
        sequence: row.try_get("sequence")?,
        device_id: DeviceId::from_str(&device_text).map_err(HubError::storage)?,
        message: Message {
            body: body.into(),
            system: properties.system,
            application: properties.application,
        },
        enqueued_time: from_micros(row.try_get("enqueued_at")?)?,
        expiry_time: from_micros(row.try_get("expires_at")?)?,
        delivery_count: u32::try_from(delivery_count).unwrap_or(u32::MAX),
    })
}

impl HubStore for SqliteStore {
    fn get_identity<'a>(
        &'a self,
        device_id: &'a DeviceId,
        module_id: Option<&'a ModuleId>,
    ) -> BoxFuture<'a, Result<Option<StoredIdentity>, HubError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT record, twin FROM identities WHERE device_id = ? AND module_id = ?",
            )
            .bind(device_id.as_str())
            .bind(module_key(module_id))
            .fetch_optional(&self.pool)
            .await?;
            row.as_ref().map(decode_identity).transpose()
        })
    }

    fn insert_identity<'a>(
        &'a self,
        identity: &'a StoredIdentity,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(async move {
            let record = &identity.record;
            let result = sqlx::query(
                "INSERT INTO identities (device_id, module_id, etag, enabled, record, twin, twin_version)
                 VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, module_id) DO NOTHING",
            )
            .bind(record.device_id.as_str())
            .bind(module_key(record.module_id.as_ref()))
            .bind(&record.etag)
            .bind(i64::from(record.status == twin::IdentityStatus::Enabled))
            .bind(encode_record(record)?)
            .bind(identity.twin.to_storage_json())
            .bind(version_column(identity.twin.version()))
            .execute(&self.pool)
            .await?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn update_identity<'a>(
        &'a self,
        record: &'a IdentityRecord,
        expected_etag: &'a str,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(async move {
            let result = sqlx::query(
                "UPDATE identities SET etag = ?, enabled = ?, record = ?
                 WHERE device_id = ? AND module_id = ? AND etag = ?",
            )
            .bind(&record.etag)
            .bind(i64::from(record.status == twin::IdentityStatus::Enabled))
            .bind(encode_record(record)?)
            .bind(record.device_id.as_str())
            .bind(module_key(record.module_id.as_ref()))
            .bind(expected_etag)
            .execute(&self.pool)
            .await?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn update_twin<'a>(
        &'a self,
        device_id: &'a DeviceId,
        module_id: Option<&'a ModuleId>,
        twin: &'a Twin,
        expected_version: u64,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(async move {
            let result = sqlx::query(
                "UPDATE identities SET twin = ?, twin_version = ?
                 WHERE device_id = ? AND module_id = ? AND twin_version = ?",
            )
            .bind(twin.to_storage_json())
            .bind(version_column(twin.version()))
            .bind(device_id.as_str())
            .bind(module_key(module_id))
            .bind(version_column(expected_version))
            .execute(&self.pool)
            .await?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn delete_identity<'a>(
        &'a self,
        device_id: &'a DeviceId,
        module_id: Option<&'a ModuleId>,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(async move {
            match module_id {
                Some(module_id) => {
                    let result =
                        sqlx::query("DELETE FROM identities WHERE device_id = ? AND module_id = ?")
                            .bind(device_id.as_str())
                            .bind(module_id.as_str())
                            .execute(&self.pool)
                            .await?;
                    Ok(result.rows_affected() == 1)
                }
                None => {
                    let mut transaction = self.pool.begin().await?;
                    let device_rows = sqlx::query(
                        "DELETE FROM identities WHERE device_id = ? AND module_id = ''",
                    )
                    .bind(device_id.as_str())
                    .execute(&mut *transaction)
                    .await?
                    .rows_affected();
                    sqlx::query("DELETE FROM identities WHERE device_id = ?")
                        .bind(device_id.as_str())
                        .execute(&mut *transaction)
                        .await?;
                    sqlx::query("DELETE FROM c2d_messages WHERE device_id = ?")
                        .bind(device_id.as_str())
                        .execute(&mut *transaction)
                        .await?;
                    transaction.commit().await?;
                    Ok(device_rows == 1)
                }
            }
        })
    }

    fn list_identities<'a>(
        &'a self,
        scope: IdentityScope<'a>,
        after: Option<&'a IdentityKey>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredIdentity>, HubError>> {
        Box::pin(async move {
            let (after_device, after_module) = match after {
                Some(key) => (key.device_id.as_str(), key.module_id.as_str()),
                None => ("", ""),
            };
            let has_after = i64::from(after.is_some());
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = match scope {
                IdentityScope::Devices => {
                    sqlx::query(
                        "SELECT record, twin FROM identities
                         WHERE module_id = '' AND (? = 0 OR device_id > ?)
                         ORDER BY device_id LIMIT ?",
                    )
                    .bind(has_after)
                    .bind(after_device)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                }
                IdentityScope::ModulesOf(device_id) => {
                    sqlx::query(
                        "SELECT record, twin FROM identities
                         WHERE device_id = ? AND module_id <> '' AND (? = 0 OR module_id > ?)
                         ORDER BY module_id LIMIT ?",
                    )
                    .bind(device_id.as_str())
                    .bind(has_after)
                    .bind(after_module)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                }
                IdentityScope::AllModules => {
                    sqlx::query(
                        "SELECT record, twin FROM identities
                         WHERE module_id <> ''
                           AND (? = 0 OR device_id > ? OR (device_id = ? AND module_id > ?))
                         ORDER BY device_id, module_id LIMIT ?",
                    )
                    .bind(has_after)
                    .bind(after_device)
                    .bind(after_device)
                    .bind(after_module)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                }
            };
            rows.iter().map(decode_identity).collect()
        })
    }

    fn count_devices(&self) -> BoxFuture<'_, Result<DeviceCounts, HubError>> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT COUNT(*) AS total, COALESCE(SUM(enabled), 0) AS enabled
                 FROM identities WHERE module_id = ''",
            )
            .fetch_one(&self.pool)
            .await?;
            let total: i64 = row.try_get("total")?;
            let enabled: i64 = row.try_get("enabled")?;
            let total = u64::try_from(total).unwrap_or(0);
            let enabled = u64::try_from(enabled).unwrap_or(0);
            Ok(DeviceCounts {
                total,
                enabled,
                disabled: total.saturating_sub(enabled),
            })
        })
    }

    fn list_policies(&self) -> BoxFuture<'_, Result<Vec<SharedAccessPolicy>, HubError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT name, rights, primary_key, secondary_key FROM policies ORDER BY name",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let rights_text: String = row.try_get("rights")?;
                    let rights = AccessRights::from_wire(&rights_text).ok_or_else(|| {
                        HubError::storage(format!("unknown rights {rights_text:?}"))
                    })?;
                    Ok(SharedAccessPolicy {
                        name: row.try_get("name")?,
                        rights,
                        primary_key: row.try_get("primary_key")?,
                        secondary_key: row.try_get("secondary_key")?,
                    })
                })
                .collect()
        })
    }

    fn insert_policy<'a>(
        &'a self,
        policy: &'a SharedAccessPolicy,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(async move {
            let result = sqlx::query(
                "INSERT INTO policies (name, rights, primary_key, secondary_key) VALUES (?, ?, ?, ?)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(&policy.name)
            .bind(policy.rights.to_wire())
            .bind(&policy.primary_key)
            .bind(&policy.secondary_key)
            .execute(&self.pool)
            .await?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn c2d_enqueue<'a>(
        &'a self,
        message: &'a QueuedC2dMessage,
        max_depth: usize,
        now: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Option<i64>, HubError>> {
        Box::pin(async move {
            let properties = StoredC2dProperties {
                system: message.message.system.clone(),
                application: message.message.application.clone(),
            };
            let properties_text = serde_json::to_string(&properties).map_err(HubError::storage)?;
            // One statement checks the depth and inserts, so concurrent senders cannot overfill the queue.
            let row = sqlx::query(
                "INSERT INTO c2d_messages (device_id, enqueued_at, expires_at, delivery_count, properties, body)
                 SELECT ?, ?, ?, ?, ?, ?
                 WHERE (SELECT COUNT(*) FROM c2d_messages WHERE device_id = ? AND expires_at > ?) < ?
                 RETURNING sequence",
            )
            .bind(message.device_id.as_str())
            .bind(micros(message.enqueued_time))
            .bind(micros(message.expiry_time))
            .bind(i64::from(message.delivery_count))
            .bind(properties_text)
            .bind(message.message.body.as_ref())
            .bind(message.device_id.as_str())
            .bind(micros(now))
            .bind(i64::try_from(max_depth).unwrap_or(i64::MAX))
            .fetch_optional(&self.pool)
            .await?;
            row.map(|row| row.try_get::<i64, _>("sequence"))
                .transpose()
                .map_err(HubError::from)
        })
    }

    fn c2d_list<'a>(
        &'a self,
        device_id: &'a DeviceId,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<QueuedC2dMessage>, HubError>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT sequence, device_id, enqueued_at, expires_at, delivery_count, properties, body
                 FROM c2d_messages WHERE device_id = ? ORDER BY sequence LIMIT ?",
            )
            .bind(device_id.as_str())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(decode_c2d).collect()
        })
    }

    fn c2d_set_delivery_count<'a>(
        &'a self,
        device_id: &'a DeviceId,
        sequence: i64,
        delivery_count: u32,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(async move {
            let result = sqlx::query(
                "UPDATE c2d_messages SET delivery_count = ? WHERE device_id = ? AND sequence = ?",
            )
            .bind(i64::from(delivery_count))
            .bind(device_id.as_str())
            .bind(sequence)
            .execute(&self.pool)
            .await?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn c2d_remove<'a>(
        &'a self,
        device_id: &'a DeviceId,
        sequence: i64,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(async move {
            let result =
                sqlx::query("DELETE FROM c2d_messages WHERE device_id = ? AND sequence = ?")
                    .bind(device_id.as_str())
                    .bind(sequence)
                    .execute(&self.pool)
                    .await?;
            Ok(result.rows_affected() == 1)
        })
    }

    fn c2d_purge<'a>(&'a self, device_id: &'a DeviceId) -> BoxFuture<'a, Result<u64, HubError>> {
        Box::pin(async move {
            let result = sqlx::query("DELETE FROM c2d_messages WHERE device_id = ?")
                .bind(device_id.as_str())
                .execute(&self.pool)
                .await?;
            Ok(result.rows_affected())
        })
    }

    fn c2d_count<'a>(&'a self, device_id: &'a DeviceId) -> BoxFuture<'a, Result<u64, HubError>> {
        Box::pin(async move {
            let row =
                sqlx::query("SELECT COUNT(*) AS queued FROM c2d_messages WHERE device_id = ?")
                    .bind(device_id.as_str())
                    .fetch_one(&self.pool)
                    .await?;
            let queued: i64 = row.try_get("queued")?;
            Ok(u64::try_from(queued).unwrap_or(0))
        })
    }

    fn list_ca_certificates(&self) -> BoxFuture<'_, Result<Vec<CaCertificate>, HubError>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT record FROM ca_certificates ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(decode_ca_certificate).collect()
        })
    }

    fn get_ca_certificate<'a>(
        &'a self,
        name: &'a CertificateName,
    ) -> BoxFuture<'a, Result<Option<CaCertificate>, HubError>> {
        Box::pin(async move {
            let row = sqlx::query("SELECT record FROM ca_certificates WHERE name = ?")
                .bind(name.as_str())
                .fetch_optional(&self.pool)
                .await?;
            row.as_ref().map(decode_ca_certificate).transpose()
        })
    }

    fn put_ca_certificate<'a>(
        &'a self,
        certificate: &'a CaCertificate,
        expected_etag: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(async move {
            let record = serde_json::to_string(certificate).map_err(HubError::storage)?;
            let result = match expected_etag {
                None => {
                    sqlx::query(
                        "INSERT INTO ca_certificates (name, etag, record) VALUES (?, ?, ?)
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(certificate.name.as_str())
                    .bind(&certificate.etag)
                    .bind(record)
                    .execute(&self.pool)
                    .await?
                }
                Some(expected_etag) => sqlx::query(
                    "UPDATE ca_certificates SET etag = ?, record = ? WHERE name = ? AND etag = ?",
                )
                .bind(&certificate.etag)
                .bind(record)
                .bind(certificate.name.as_str())
                .bind(expected_etag)
                .execute(&self.pool)
                .await?,
            };
            Ok(result.rows_affected() == 1)
        })
    }

    fn delete_ca_certificate<'a>(
        &'a self,
        name: &'a CertificateName,
        expected_etag: &'a str,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(async move {
            let result = sqlx::query("DELETE FROM ca_certificates WHERE name = ? AND etag = ?")
                .bind(name.as_str())
                .bind(expected_etag)
                .execute(&self.pool)
                .await?;
            Ok(result.rows_affected() == 1)
        })
    }
}

fn decode_ca_certificate(row: &SqliteRow) -> Result<CaCertificate, HubError> {
    let record_text: String = row.try_get("record")?;
    serde_json::from_str(&record_text)
        .map_err(|error| HubError::storage(format!("unreadable CA certificate: {error}")))
}

/// Twin versions are `u64` in the domain; databases store signed 64-bit integers.
fn version_column(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}
