//! The default schedules, from `ops/schedules.default.json`, inserted once: when a
//! database is first migrated. Later edits (through the API) are the operator's; a
//! schedule that was deleted stays deleted.

use sea_orm_migration::prelude::*;

/// The defaults, as shipped.
pub const DEFAULTS: &str = include_str!("../../ops/schedules.default.json");

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Reads a field of a default, or fails the migration naming it.
fn field<'a>(s: &'a serde_json::Value, name: &str) -> Result<&'a serde_json::Value, DbErr> {
    s.get(name).ok_or_else(|| {
        DbErr::Migration(format!(
            "ops/schedules.default.json: a schedule lacks {name:?}"
        ))
    })
}

fn text(s: &serde_json::Value, name: &str, default: Option<&str>) -> Result<String, DbErr> {
    match (s.get(name).and_then(serde_json::Value::as_str), default) {
        (Some(v), _) => Ok(v.to_owned()),
        (None, Some(d)) => Ok(d.to_owned()),
        (None, None) => field(s, name).map(|v| v.to_string()),
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let doc: serde_json::Value = serde_json::from_str(DEFAULTS)
            .map_err(|e| DbErr::Migration(format!("ops/schedules.default.json: {e}")))?;
        let list = field(&doc, "schedules")?
            .as_array()
            .cloned()
            .unwrap_or_default();
        let now = chrono::Utc::now();
        for s in &list {
            let payload = s.get("payload").cloned().unwrap_or(serde_json::json!({}));
            let insert = Query::insert()
                .into_table("schedules")
                .columns([
                    "name",
                    "cron",
                    "timezone",
                    "queue",
                    "payload",
                    "missed_fire",
                    "catch_up_limit",
                    "overlap",
                    "enabled",
                    "anchor_at",
                    "created_at",
                    "updated_at",
                ])
                .values_panic([
                    text(s, "name", None)?.into(),
                    text(s, "cron", None)?.into(),
                    text(s, "timezone", Some("UTC"))?.into(),
                    text(s, "queue", None)?.into(),
                    payload.to_string().into(),
                    text(s, "missed_fire", Some("once"))?.into(),
                    // An i32, as the entity binds it: the same SQL prepared once with an
                    // int8 parameter would make PostgreSQL refuse the entity's insert
                    // on that connection ("insufficient data left in message").
                    s.get("catch_up_limit")
                        .and_then(serde_json::Value::as_i64)
                        .and_then(|n| <i32 as TryFrom<i64>>::try_from(n).ok())
                        .unwrap_or(10)
                        .into(),
                    text(s, "overlap", Some("allow"))?.into(),
                    s.get("enabled")
                        .and_then(serde_json::Value::as_bool)
                        .unwrap_or(true)
                        .into(),
                    now.into(),
                    now.into(),
                    now.into(),
                ])
                .on_conflict(OnConflict::column("name").do_nothing().to_owned())
                .to_owned();
            manager.exec_stmt(insert).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let doc: serde_json::Value = serde_json::from_str(DEFAULTS)
            .map_err(|e| DbErr::Migration(format!("ops/schedules.default.json: {e}")))?;
        let names: Vec<String> = doc["schedules"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|s| s["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        manager
            .exec_stmt(
                Query::delete()
                    .from_table("schedules")
                    .and_where(Expr::col("name").is_in(names))
                    .to_owned(),
            )
            .await
    }
}
