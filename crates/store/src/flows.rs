//! Flows, the numbers bound to them, and their runs.

use crate::db::{self, Row};
use async_trait::async_trait;
use tessera_core::Timestamp;
use tessera_core::ids::TenantId;
use tessera_core::store::{Binding, FlowRun, FlowStore, StoreError, StoreResult, StoredFlow};

use crate::db_error;
use crate::queries::{SqlStore, write_error};
use crate::rows::{corrupt, get};

fn flow(row: &Row) -> StoreResult<StoredFlow> {
    Ok(StoredFlow {
        sid: get(row, "sid")?,
        tenant_id: get::<String>(row, "tenant_id")?.parse().map_err(|_| corrupt("tenant id"))?,
        friendly_name: get(row, "friendly_name")?,
        definition: serde_json::from_str(&get::<String>(row, "definition")?).map_err(corrupt)?,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
    })
}

const RUN_COLUMNS: &str = "sid, flow_sid, status, current_state, context, steps, created_at, updated_at, lease_until";

fn run(row: &Row) -> StoreResult<FlowRun> {
    Ok(FlowRun {
        sid: get(row, "sid")?,
        flow_sid: get(row, "flow_sid")?,
        status: get(row, "status")?,
        current: get(row, "current_state")?,
        context: serde_json::from_str(&get::<String>(row, "context")?).map_err(corrupt)?,
        steps: serde_json::from_str(&get::<String>(row, "steps")?).map_err(corrupt)?,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        updated_at: Timestamp::from_millis(get(row, "updated_at")?),
        lease_until: get::<Option<i64>>(row, "lease_until")?.map(Timestamp::from_millis),
    })
}

/// Binds within a transaction: a plain insert, or (when moving is allowed) an upsert; a
/// number already bound to this very flow is no conflict.
async fn bind(tx: &mut db::Tx<'_>, tenant: TenantId, flow_sid: &str, b: &Binding) -> StoreResult<()> {
    let sql = if b.move_from_other {
        "INSERT INTO flow_numbers (number, tenant_id, flow_sid) VALUES ($1, $2, $3) \
         ON CONFLICT (number) DO UPDATE SET tenant_id = $2, flow_sid = $3"
    } else {
        "INSERT INTO flow_numbers (number, tenant_id, flow_sid) VALUES ($1, $2, $3) ON CONFLICT (number) DO NOTHING"
    };
    db::query(sql)
        .bind(b.number.clone())
        .bind(tenant.to_string())
        .bind(flow_sid.to_owned())
        .execute(tx)
        .await
        .map_err(write_error)?;
    let bound: Option<String> = db::query("SELECT flow_sid FROM flow_numbers WHERE number = $1")
        .bind(b.number.clone())
        .fetch_optional(tx)
        .await
        .map_err(db_error)?
        .map(|r| get(&r, "flow_sid"))
        .transpose()?;
    if bound.as_deref() == Some(flow_sid) { Ok(()) } else { Err(StoreError::Conflict("number".into())) }
}

#[async_trait]
impl FlowStore for SqlStore {
    async fn insert_flow(&self, f: &StoredFlow, number: Option<&Binding>) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        let mut tx = self.begin_on(&mut conn).await?;
        db::query(
            "INSERT INTO flows (sid, tenant_id, friendly_name, definition, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(f.sid.clone())
        .bind(f.tenant_id.to_string())
        .bind(f.friendly_name.clone())
        .bind(f.definition.to_string())
        .bind(f.created_at.millis())
        .execute(&mut tx)
        .await
        .map_err(write_error)?;
        if let Some(b) = number {
            bind(&mut tx, f.tenant_id, &f.sid, b).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(())
    }

    async fn flow(&self, tenant: TenantId, sid: &str) -> StoreResult<Option<StoredFlow>> {
        db::query(
            "SELECT sid, tenant_id, friendly_name, definition, created_at FROM flows WHERE tenant_id = $1 AND sid = $2",
        )
        .bind(tenant.to_string())
        .bind(sid.to_owned())
        .fetch_optional(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .map(|r| flow(&r))
        .transpose()
    }

    async fn flows(&self, tenant: TenantId) -> StoreResult<Vec<StoredFlow>> {
        db::query("SELECT sid, tenant_id, friendly_name, definition, created_at FROM flows WHERE tenant_id = $1 ORDER BY created_at, sid")
            .bind(tenant.to_string())
            .fetch_all(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .iter()
            .map(flow)
            .collect()
    }

    async fn delete_flow(&self, tenant: TenantId, sid: &str) -> StoreResult<bool> {
        let mut conn = self.write_conn().await?;
        let mut tx = self.begin_on(&mut conn).await?;
        db::query("DELETE FROM flow_numbers WHERE flow_sid = $1")
            .bind(sid.to_owned())
            .execute(&mut tx)
            .await
            .map_err(db_error)?;
        let done = db::query("DELETE FROM flows WHERE tenant_id = $1 AND sid = $2")
            .bind(tenant.to_string())
            .bind(sid.to_owned())
            .execute(&mut tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn bind_number(&self, tenant: TenantId, flow_sid: &str, binding: &Binding) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        let mut tx = self.begin_on(&mut conn).await?;
        bind(&mut tx, tenant, flow_sid, binding).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn bindings(&self, tenant: TenantId, flow_sid: Option<&str>) -> StoreResult<Vec<(String, String)>> {
        let rows = db::query(
            "SELECT number, flow_sid FROM flow_numbers WHERE tenant_id = $1 AND ($2 = '' OR flow_sid = $2) ORDER BY number",
        )
        .bind(tenant.to_string())
        .bind(flow_sid.unwrap_or_default().to_owned())
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?;
        rows.iter().map(|r| Ok((get(r, "number")?, get(r, "flow_sid")?))).collect()
    }

    async fn flow_for_number(&self, number: &str) -> StoreResult<Option<StoredFlow>> {
        db::query(
            "SELECT f.sid, f.tenant_id, f.friendly_name, f.definition, f.created_at FROM flows f \
             JOIN flow_numbers n ON n.flow_sid = f.sid WHERE n.number = $1",
        )
        .bind(number.to_owned())
        .fetch_optional(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .map(|r| flow(&r))
        .transpose()
    }

    async fn insert_run(&self, r: &FlowRun) -> StoreResult<()> {
        db::query(format!("INSERT INTO flow_runs ({RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
            .bind(r.sid.clone())
            .bind(r.flow_sid.clone())
            .bind(r.status.clone())
            .bind(r.current.clone())
            .bind(r.context.to_string())
            .bind(serde_json::Value::from(r.steps.clone()).to_string())
            .bind(r.created_at.millis())
            .bind(r.updated_at.millis())
            .bind(r.lease_until.map(Timestamp::millis))
            .execute(&mut self.write_conn().await?)
            .await
            .map_err(write_error)?;
        Ok(())
    }

    async fn update_run(&self, r: &FlowRun) -> StoreResult<()> {
        db::query(
            "UPDATE flow_runs SET status = $2, current_state = $3, context = $4, steps = $5, updated_at = $6, \
             lease_until = $7 WHERE sid = $1",
        )
        .bind(r.sid.clone())
        .bind(r.status.clone())
        .bind(r.current.clone())
        .bind(r.context.to_string())
        .bind(serde_json::Value::from(r.steps.clone()).to_string())
        .bind(r.updated_at.millis())
        .bind(r.lease_until.map(Timestamp::millis))
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn fail_abandoned_run(&self, r: &FlowRun, now: Timestamp) -> StoreResult<bool> {
        let done = db::query(
            "UPDATE flow_runs SET status = $2, current_state = $3, steps = $4, updated_at = $5, lease_until = NULL \
             WHERE sid = $1 AND status = 'running' AND (lease_until IS NULL OR lease_until < $5)",
        )
        .bind(r.sid.clone())
        .bind(r.status.clone())
        .bind(r.current.clone())
        .bind(serde_json::Value::from(r.steps.clone()).to_string())
        .bind(now.millis())
        .execute(&mut self.write_conn().await?)
        .await
        .map_err(db_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn run(&self, sid: &str) -> StoreResult<Option<FlowRun>> {
        db::query(format!("SELECT {RUN_COLUMNS} FROM flow_runs WHERE sid = $1"))
            .bind(sid.to_owned())
            .fetch_optional(&mut self.conn().await?)
            .await
            .map_err(db_error)?
            .map(|r| run(&r))
            .transpose()
    }

    async fn runs(&self, flow_sid: &str, limit: u64) -> StoreResult<Vec<FlowRun>> {
        db::query(format!(
            "SELECT {RUN_COLUMNS} FROM flow_runs WHERE flow_sid = $1 ORDER BY created_at DESC, sid DESC LIMIT $2"
        ))
        .bind(flow_sid.to_owned())
        .bind(i64::try_from(limit).unwrap_or(100))
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .iter()
        .map(run)
        .collect()
    }

    async fn abandoned_runs(&self, now: Timestamp) -> StoreResult<Vec<FlowRun>> {
        db::query(format!(
            "SELECT {RUN_COLUMNS} FROM flow_runs WHERE status = 'running' AND (lease_until IS NULL OR lease_until < $1)"
        ))
        .bind(now.millis())
        .fetch_all(&mut self.conn().await?)
        .await
        .map_err(db_error)?
        .iter()
        .map(run)
        .collect()
    }
}
