//! Sealed values by column, for re-sealing after a key rotation.

use async_trait::async_trait;
use tessera_core::store::{SealedColumn, SealedValueStore, StoreResult};

use crate::db;
use crate::db_error;
use crate::queries::SqlStore;
use crate::rows::get;

/// Table, key column and value column of each sealed column.
fn place(column: SealedColumn) -> (&'static str, &'static str, &'static str) {
    match column {
        SealedColumn::MessengerSecrets => ("messengers", "id", "sealed_secrets"),
        SealedColumn::VoicePrompt => ("voice_prompts", "digest", "sealed_text"),
        SealedColumn::VerificationCode => ("verifications", "sid", "sealed_code"),
        SealedColumn::FlowDefinition => ("flows", "sid", "definition"),
        SealedColumn::FlowRunContext => ("flow_runs", "sid", "context"),
        SealedColumn::SignInEnrolKey => ("sign_ins", "digest", "enrol_key"),
        SealedColumn::ActionSecrets => ("actions", "id", "secrets"),
    }
}

#[async_trait]
impl SealedValueStore for SqlStore {
    async fn sealed_values(&self, column: SealedColumn) -> StoreResult<Vec<(String, String)>> {
        let (table, key, value) = place(column);
        let sql = format!("SELECT {key} AS k, {value} AS v FROM {table} WHERE {value} IS NOT NULL ORDER BY {key}");
        let rows = db::query(sql).fetch_all(&mut self.conn().await?).await.map_err(db_error)?;
        rows.iter().map(|r| Ok((get(r, "k")?, get(r, "v")?))).collect()
    }

    async fn replace_sealed_value(&self, column: SealedColumn, key: &str, old: &str, new: &str) -> StoreResult<bool> {
        let (table, key_column, value) = place(column);
        let sql = format!("UPDATE {table} SET {value} = $3 WHERE {key_column} = $1 AND {value} = $2");
        let done = db::query(sql)
            .bind(key.to_owned())
            .bind(old.to_owned())
            .bind(new.to_owned())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_code_hashes(&self) -> StoreResult<Vec<String>> {
        let rows =
            db::query("SELECT hash FROM recovery_codes").fetch_all(&mut self.conn().await?).await.map_err(db_error)?;
        rows.iter().map(|r| get(r, "hash")).collect()
    }
}
