//! Actions, their deployed versions, the order they run in per trigger, and the record
//! of each run.

use async_trait::async_trait;
use tessera_core::Timestamp;
use tessera_core::actions::{Action, ActionVersion, BoundAction, ExecutionRecord, Trigger, TriggerBinding};
use tessera_core::ids::{ActionId, ExecutionId, TenantId};
use tessera_core::store::{ActionStore, StoreResult};

use crate::db::{self, Row};
use crate::db_error;
use crate::queries::{SqlStore, write_error};
use crate::rows::{corrupt, get};

const ACTION_COLUMNS: &str = "id, tenant_id, name, trigger_id, trigger_version, runtime, code, dependencies, \
     secrets, deployed_version_id, created_at, updated_at";
const VERSION_COLUMNS: &str = "id, action_id, number, code, dependencies, runtime, created_at";

fn trigger(row: &Row, column: &str) -> StoreResult<Trigger> {
    Trigger::parse(&get::<String>(row, column)?).ok_or_else(|| corrupt("trigger"))
}

fn action(row: &Row) -> StoreResult<Action> {
    Ok(Action {
        id: get::<String>(row, "id")?.parse().map_err(|_| corrupt("action id"))?,
        tenant_id: get::<String>(row, "tenant_id")?.parse().map_err(|_| corrupt("tenant id"))?,
        name: get(row, "name")?,
        trigger: trigger(row, "trigger_id")?,
        trigger_version: get(row, "trigger_version")?,
        runtime: get(row, "runtime")?,
        code: get(row, "code")?,
        dependencies: serde_json::from_str(&get::<String>(row, "dependencies")?).map_err(corrupt)?,
        sealed_secrets: get(row, "secrets")?,
        deployed_version: get::<Option<String>>(row, "deployed_version_id")?
            .map(|v| v.parse().map_err(|_| corrupt("version id")))
            .transpose()?,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        updated_at: Timestamp::from_millis(get(row, "updated_at")?),
    })
}

fn version(row: &Row) -> StoreResult<ActionVersion> {
    Ok(ActionVersion {
        id: get::<String>(row, "id")?.parse().map_err(|_| corrupt("version id"))?,
        action_id: get::<String>(row, "action_id")?.parse().map_err(|_| corrupt("action id"))?,
        number: u32::try_from(get::<i64>(row, "number")?).map_err(|_| corrupt("version number"))?,
        code: get(row, "code")?,
        dependencies: serde_json::from_str(&get::<String>(row, "dependencies")?).map_err(corrupt)?,
        runtime: get(row, "runtime")?,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
    })
}

fn binding(row: &Row) -> StoreResult<TriggerBinding> {
    Ok(TriggerBinding {
        id: get(row, "id")?,
        action_id: get::<String>(row, "action_id")?.parse().map_err(|_| corrupt("action id"))?,
        display_name: get(row, "display_name")?,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
    })
}

fn dependencies(a: &[tessera_core::actions::Dependency]) -> String {
    serde_json::to_string(a).unwrap_or_else(|_| "[]".into())
}

#[async_trait]
impl ActionStore for SqlStore {
    async fn insert_action(&self, a: &Action) -> StoreResult<()> {
        db::query(format!(
            "INSERT INTO actions ({ACTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(a.id.to_string())
        .bind(a.tenant_id.to_string())
        .bind(a.name.clone())
        .bind(a.trigger.id().to_owned())
        .bind(a.trigger_version.clone())
        .bind(a.runtime.clone())
        .bind(a.code.clone())
        .bind(dependencies(&a.dependencies))
        .bind(a.sealed_secrets.clone())
        .bind(a.deployed_version.map(|v| v.to_string()))
        .bind(a.created_at.millis())
        .bind(a.updated_at.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn action(&self, tenant: TenantId, id: ActionId) -> StoreResult<Option<Action>> {
        db::query(format!("SELECT {ACTION_COLUMNS} FROM actions WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| action(&r))
            .transpose()
    }

    async fn actions(&self, tenant: TenantId) -> StoreResult<Vec<Action>> {
        db::query(format!("SELECT {ACTION_COLUMNS} FROM actions WHERE tenant_id = $1 ORDER BY name"))
            .bind(tenant.to_string())
            .fetch_all(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .iter()
            .map(action)
            .collect()
    }

    async fn update_action(&self, a: &Action) -> StoreResult<bool> {
        let done = db::query(
            "UPDATE actions SET name = $3, code = $4, dependencies = $5, secrets = $6, runtime = $7, \
             deployed_version_id = $8, updated_at = $9 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(a.tenant_id.to_string())
        .bind(a.id.to_string())
        .bind(a.name.clone())
        .bind(a.code.clone())
        .bind(dependencies(&a.dependencies))
        .bind(a.sealed_secrets.clone())
        .bind(a.runtime.clone())
        .bind(a.deployed_version.map(|v| v.to_string()))
        .bind(a.updated_at.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_action(&self, tenant: TenantId, id: ActionId) -> StoreResult<bool> {
        let mut conn = self.write_conn().await?;
        let mut tx = self.begin_on(&mut conn).await?;
        let owned = db::query("SELECT id FROM actions WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut tx)
            .await
            .map_err(db_error)?
            .is_some();
        if !owned {
            return Ok(false);
        }
        for sql in ["DELETE FROM action_versions WHERE action_id = $1", "DELETE FROM actions WHERE id = $1"] {
            db::query(sql).bind(id.to_string()).execute(&mut tx).await.map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn insert_action_version(&self, v: &ActionVersion) -> StoreResult<()> {
        db::query(format!("INSERT INTO action_versions ({VERSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
            .bind(v.id.to_string())
            .bind(v.action_id.to_string())
            .bind(i64::from(v.number))
            .bind(v.code.clone())
            .bind(dependencies(&v.dependencies))
            .bind(v.runtime.clone())
            .bind(v.created_at.millis())
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn action_versions(&self, action: ActionId) -> StoreResult<Vec<ActionVersion>> {
        db::query(format!("SELECT {VERSION_COLUMNS} FROM action_versions WHERE action_id = $1 ORDER BY number DESC"))
            .bind(action.to_string())
            .fetch_all(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .iter()
            .map(version)
            .collect()
    }

    async fn trigger_bindings(&self, tenant: TenantId, trigger: Trigger) -> StoreResult<Vec<TriggerBinding>> {
        db::query(
            "SELECT id, action_id, display_name, created_at FROM action_bindings \
             WHERE tenant_id = $1 AND trigger_id = $2 ORDER BY position",
        )
        .bind(tenant.to_string())
        .bind(trigger.id().to_owned())
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .iter()
        .map(binding)
        .collect()
    }

    async fn replace_trigger_bindings(
        &self,
        tenant: TenantId,
        trigger: Trigger,
        bindings: &[TriggerBinding],
    ) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        let mut tx = self.begin_on(&mut conn).await?;
        db::query("DELETE FROM action_bindings WHERE tenant_id = $1 AND trigger_id = $2")
            .bind(tenant.to_string())
            .bind(trigger.id().to_owned())
            .execute(&mut tx)
            .await
            .map_err(db_error)?;
        for (position, b) in bindings.iter().enumerate() {
            db::query(
                "INSERT INTO action_bindings (tenant_id, trigger_id, position, id, action_id, display_name, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tenant.to_string())
            .bind(trigger.id().to_owned())
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .bind(b.id.clone())
            .bind(b.action_id.to_string())
            .bind(b.display_name.clone())
            .bind(b.created_at.millis())
            .execute(&mut tx)
            .await
            .map_err(write_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn action_is_bound(&self, action: ActionId) -> StoreResult<bool> {
        Ok(db::query("SELECT id FROM action_bindings WHERE action_id = $1 LIMIT 1")
            .bind(action.to_string())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .is_some())
    }

    async fn bound_actions(&self, tenant: TenantId, trigger: Trigger) -> StoreResult<Vec<BoundAction>> {
        let rows = db::query(
            "SELECT b.id AS binding_id, b.display_name, b.created_at AS bound_at, a.name, a.secrets, \
             v.id, v.action_id, v.number, v.code, v.dependencies, v.runtime, v.created_at \
             FROM action_bindings b JOIN actions a ON a.id = b.action_id \
             JOIN action_versions v ON v.id = a.deployed_version_id \
             WHERE b.tenant_id = $1 AND b.trigger_id = $2 ORDER BY b.position",
        )
        .bind(tenant.to_string())
        .bind(trigger.id().to_owned())
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                let version = version(r)?;
                Ok(BoundAction {
                    binding: TriggerBinding {
                        id: get(r, "binding_id")?,
                        action_id: version.action_id,
                        display_name: get(r, "display_name")?,
                        created_at: Timestamp::from_millis(get(r, "bound_at")?),
                    },
                    name: get(r, "name")?,
                    sealed_secrets: get(r, "secrets")?,
                    version,
                })
            })
            .collect()
    }

    async fn insert_execution(&self, e: &ExecutionRecord) -> StoreResult<()> {
        db::query(
            "INSERT INTO action_executions (id, tenant_id, trigger_id, status, results, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(e.id.to_string())
        .bind(e.tenant_id.to_string())
        .bind(e.trigger.id().to_owned())
        .bind(e.status.clone())
        .bind(serde_json::to_string(&e.results).map_err(|e| corrupt(e.to_string()))?)
        .bind(e.created_at.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    async fn execution(&self, tenant: TenantId, id: ExecutionId) -> StoreResult<Option<ExecutionRecord>> {
        let row = db::query(
            "SELECT id, tenant_id, trigger_id, status, results, created_at FROM action_executions \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut self.conn().await?)
        .await
        .map_err(db_error)?;
        row.map(|r| {
            Ok(ExecutionRecord {
                id: get::<String>(&r, "id")?.parse().map_err(|_| corrupt("execution id"))?,
                tenant_id: get::<String>(&r, "tenant_id")?.parse().map_err(|_| corrupt("tenant id"))?,
                trigger: trigger(&r, "trigger_id")?,
                status: get(&r, "status")?,
                results: serde_json::from_str(&get::<String>(&r, "results")?).map_err(corrupt)?,
                created_at: Timestamp::from_millis(get(&r, "created_at")?),
            })
        })
        .transpose()
    }
}
