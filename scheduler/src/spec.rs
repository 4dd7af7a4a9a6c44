//! A schedule's definition, checked: the one place that says what a valid schedule is,
//! for the API (which refuses a bad one with a 400 naming the field) and for the
//! scheduler (which passes over a row that no longer checks out, and says so).

use chrono::{DateTime, DurationRound, Utc};
use drover_entities::schedule;
use drover_jobs::QueueName;
use drover_jobs::kinds::validate_payload;
use serde_json::Value;

use crate::plan::{MAX_CATCH_UP, MissedFire, Overlap, Policy};
use crate::template;
use crate::timing::Timing;

/// A field of a schedule that is not acceptable, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// `cron`, `timezone`, `payload.bucket_start`, …
    pub field: String,
    pub message: String,
}

impl SpecError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The fields of a schedule, as given (by the API, the database, or the defaults file).
#[derive(Debug, Clone)]
pub struct Draft {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub queue: String,
    pub payload: Value,
    pub missed_fire: String,
    pub catch_up_limit: i64,
    pub overlap: String,
    pub enabled: bool,
}

/// A schedule that checked out.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub timing: Timing,
    pub queue: QueueName,
    /// The payload template.
    pub payload: Value,
    pub missed_fire: MissedFire,
    pub catch_up_limit: u32,
    pub overlap: Overlap,
    pub enabled: bool,
    /// Fires before this are not owed (see the entity).
    pub anchor_at: DateTime<Utc>,
}

/// Checks a schedule name: 1 to 64 of `a-z 0-9 _ -`.
pub fn check_name(name: &str) -> Result<(), SpecError> {
    drover_queue::keys::validate_name(name).map_err(|_| {
        SpecError::new(
            "name",
            format!("{name:?} is not a schedule name: use 1 to 64 of a-z, 0-9, _ and -"),
        )
    })
}

/// Renders `payload` for a fire at `at` and checks it as `queue` would.
pub fn render_payload(
    queue: QueueName,
    name: &str,
    payload: &Value,
    at: DateTime<Utc>,
) -> Result<Value, SpecError> {
    if !payload.is_object() {
        return Err(SpecError::new("payload", "must be a JSON object"));
    }
    let rendered = template::render(payload, name, at).map_err(|e| {
        SpecError::new(
            if e.field.is_empty() {
                "payload".to_owned()
            } else {
                format!("payload.{}", e.field)
            },
            e.message,
        )
    })?;
    validate_payload(queue, &rendered).map_err(|e| {
        // serde reports a missing field at its parent: name the field itself.
        let missing = e
            .message
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next());
        let field = match (e.field.as_str(), missing) {
            ("", None) => "payload".to_owned(),
            ("", Some(m)) => format!("payload.{m}"),
            (f, None) => format!("payload.{f}"),
            (f, Some(m)) => format!("payload.{f}.{m}"),
        };
        SpecError::new(
            field,
            format!("the {queue} queue would refuse it: {}", e.message),
        )
    })?;
    Ok(rendered)
}

impl Draft {
    /// Checks every field; the payload is rendered for a fire at `now` and checked as
    /// the queue would check it. `anchor_at` is carried into the result.
    pub fn check(&self, now: DateTime<Utc>, anchor_at: DateTime<Utc>) -> Result<Spec, SpecError> {
        check_name(&self.name)?;
        let cron = self.cron.trim().to_owned();
        // The expression first, on its own, so that its error names `cron`.
        Timing::new(&cron, "UTC").map_err(|e| SpecError::new("cron", e.0))?;
        let timing =
            Timing::new(&cron, &self.timezone).map_err(|e| SpecError::new("timezone", e.0))?;
        let queue: QueueName =
            self.queue
                .parse()
                .map_err(|e: drover_jobs::queues::UnknownQueue| {
                    SpecError::new("queue", e.to_string())
                })?;
        let missed_fire: MissedFire = self
            .missed_fire
            .parse()
            .map_err(|e: String| SpecError::new("missed_fire", e))?;
        let overlap: Overlap = self
            .overlap
            .parse()
            .map_err(|e: String| SpecError::new("overlap", e))?;
        let catch_up_limit = u32::try_from(self.catch_up_limit)
            .ok()
            .filter(|n| *n <= MAX_CATCH_UP)
            .ok_or_else(|| {
                SpecError::new(
                    "catch_up_limit",
                    format!("must be between 0 and {MAX_CATCH_UP}"),
                )
            })?;
        let sample = now
            .duration_trunc(chrono::Duration::seconds(1))
            .unwrap_or(now);
        render_payload(queue, &self.name, &self.payload, sample)?;
        if timing.next_after(now).is_none() {
            return Err(SpecError::new("cron", "never fires again"));
        }
        Ok(Spec {
            name: self.name.clone(),
            cron,
            timezone: self.timezone.clone(),
            timing,
            queue,
            payload: self.payload.clone(),
            missed_fire,
            catch_up_limit,
            overlap,
            enabled: self.enabled,
            anchor_at,
        })
    }
}

impl Spec {
    /// The schedule stored in row `m`, checked. The payload is checked at `now`.
    pub fn from_model(m: &schedule::Model, now: DateTime<Utc>) -> Result<Self, SpecError> {
        let payload: Value = serde_json::from_str(&m.payload)
            .map_err(|e| SpecError::new("payload", format!("stored payload is not JSON: {e}")))?;
        Draft {
            name: m.name.clone(),
            cron: m.cron.clone(),
            timezone: m.timezone.clone(),
            queue: m.queue.clone(),
            payload,
            missed_fire: m.missed_fire.clone(),
            catch_up_limit: i64::from(m.catch_up_limit),
            overlap: m.overlap.clone(),
            enabled: m.enabled,
        }
        .check(now, m.anchor_at)
    }

    /// The missed-fire policy's inputs, with this grace.
    #[must_use]
    pub fn policy(&self, grace: chrono::Duration) -> Policy {
        Policy {
            missed_fire: self.missed_fire,
            catch_up_limit: self.catch_up_limit,
            grace,
        }
    }
}

/// The default schedules shipped in `ops/schedules.default.json`, as drafts.
///
/// # Errors
/// If the file is not the expected JSON.
pub fn defaults() -> Result<Vec<Draft>, SpecError> {
    let doc: Value = serde_json::from_str(drover_migration::DEFAULT_SCHEDULES)
        .map_err(|e| SpecError::new("", format!("ops/schedules.default.json: {e}")))?;
    let list = doc["schedules"].as_array().cloned().unwrap_or_default();
    Ok(list
        .iter()
        .map(|s| {
            let text = |k: &str, d: &str| s[k].as_str().unwrap_or(d).to_owned();
            Draft {
                name: text("name", ""),
                cron: text("cron", ""),
                timezone: text("timezone", "UTC"),
                queue: text("queue", ""),
                payload: s
                    .get("payload")
                    .cloned()
                    .unwrap_or(Value::Object(Default::default())),
                missed_fire: text("missed_fire", "once"),
                catch_up_limit: s["catch_up_limit"].as_i64().unwrap_or(10),
                overlap: text("overlap", "allow"),
                enabled: s["enabled"].as_bool().unwrap_or(true),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn draft() -> Draft {
        Draft {
            name: "nightly".into(),
            cron: "0 2 * * *".into(),
            timezone: "Europe/Berlin".into(),
            queue: "aggregation".into(),
            payload: json!({"granularity": "day", "bucket_start": "{{previous_day_start}}"}),
            missed_fire: "all".into(),
            catch_up_limit: 3,
            overlap: "skip".into(),
            enabled: true,
        }
    }

    fn field_of(d: Draft) -> String {
        d.check(Utc::now(), Utc::now()).unwrap_err().field
    }

    #[test]
    fn a_good_schedule_checks_out() {
        let s = draft().check(Utc::now(), Utc::now()).unwrap();
        assert_eq!(s.queue, QueueName::Aggregation);
        assert_eq!(s.missed_fire, MissedFire::All);
        assert_eq!(s.overlap, Overlap::Skip);
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(
            field_of(Draft {
                name: "Bad Name".into(),
                ..draft()
            }),
            "name"
        );
        assert_eq!(
            field_of(Draft {
                cron: "* * *".into(),
                ..draft()
            }),
            "cron"
        );
        assert_eq!(
            field_of(Draft {
                cron: "0 25 * * *".into(),
                ..draft()
            }),
            "cron"
        );
        assert_eq!(
            field_of(Draft {
                timezone: "Europe/Atlantis".into(),
                ..draft()
            }),
            "timezone"
        );
        assert_eq!(
            field_of(Draft {
                queue: "email".into(),
                ..draft()
            }),
            "queue"
        );
        assert_eq!(
            field_of(Draft {
                missed_fire: "twice".into(),
                ..draft()
            }),
            "missed_fire"
        );
        assert_eq!(
            field_of(Draft {
                overlap: "queue".into(),
                ..draft()
            }),
            "overlap"
        );
        assert_eq!(
            field_of(Draft {
                catch_up_limit: -1,
                ..draft()
            }),
            "catch_up_limit"
        );
        assert_eq!(
            field_of(Draft {
                catch_up_limit: 1001,
                ..draft()
            }),
            "catch_up_limit"
        );
        assert_eq!(
            field_of(Draft {
                payload: json!([1]),
                ..draft()
            }),
            "payload"
        );
        assert_eq!(
            field_of(Draft {
                payload: json!({"granularity": "week", "bucket_start": "{{day_start}}"}),
                ..draft()
            }),
            "payload.granularity"
        );
        assert_eq!(
            field_of(Draft {
                payload: json!({"granularity": "day", "bucket_start": "{{scheduled_at}}"}),
                ..draft()
            }),
            "payload.bucket_start"
        );
        assert_eq!(
            field_of(Draft {
                payload: json!({"granularity": "day"}),
                ..draft()
            }),
            "payload.bucket_start"
        );
        assert_eq!(
            field_of(Draft {
                payload: json!({"granularity": "day", "bucket_start": "{{nope}}"}),
                ..draft()
            }),
            "payload.bucket_start"
        );
        // A date that never comes.
        assert_eq!(
            field_of(Draft {
                cron: "0 0 30 2 *".into(),
                ..draft()
            }),
            "cron"
        );
    }

    #[test]
    fn the_shipped_defaults_check_out_and_are_the_documented_ones() {
        let d = defaults().unwrap();
        let names: Vec<_> = d.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "hourly-aggregation",
                "daily-aggregation",
                "daily-cleanup",
                "weekly-export"
            ]
        );
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let from = at("2026-11-22T12:00:00Z"); // a Sunday
        let mut next = Vec::new();
        for s in &d {
            let spec = s
                .check(Utc::now(), Utc::now())
                .unwrap_or_else(|e| panic!("{}: {e}", s.name));
            assert_eq!(spec.timezone, "UTC");
            next.push(spec.timing.next_after(from).unwrap().to_rfc3339());
        }
        assert_eq!(
            next,
            [
                "2026-11-22T12:05:00+00:00",
                "2026-11-23T01:00:00+00:00",
                "2026-11-23T02:00:00+00:00",
                "2026-11-23T08:00:00+00:00"
            ]
        );
        // The weekly export covers the week before the Monday it runs on.
        let export = d.iter().find(|s| s.name == "weekly-export").unwrap();
        let p = render_payload(
            QueueName::Export,
            &export.name,
            &export.payload,
            at("2026-11-23T08:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            p["filters"],
            json!({"from": "2026-11-16T00:00:00Z", "to": "2026-11-23T00:00:00Z"})
        );
        let hourly = d.iter().find(|s| s.name == "hourly-aggregation").unwrap();
        let p = render_payload(
            QueueName::Aggregation,
            &hourly.name,
            &hourly.payload,
            at("2026-11-23T08:05:00Z"),
        )
        .unwrap();
        assert_eq!(p["bucket_start"], "2026-11-23T07:00:00Z");
    }
}
