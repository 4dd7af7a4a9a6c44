//! Payload templates: a schedule's payload, with the fire's scheduled time filled in.
//!
//! A template is any JSON value. In its strings, `{{name}}` is replaced by one of the
//! values below, all computed from the fire's *scheduled* time (not the time it ran),
//! in UTC, as RFC 3339 (`2026-11-22T09:00:00Z`). So a fire replayed late, or twice,
//! produces the same payload.
//!
//! | placeholder | value |
//! |---|---|
//! | `{{scheduled_at}}` | the scheduled time |
//! | `{{hour_start}}` / `{{previous_hour_start}}` | start of its hour / of the hour before |
//! | `{{day_start}}` / `{{previous_day_start}}` | start of its UTC day / of the day before |
//! | `{{week_start}}` / `{{previous_week_start}}` | start of its ISO week (Monday 00:00 UTC) / of the week before |
//! | `{{schedule}}` | the schedule's name |
//!
//! Spaces inside the braces are allowed (`{{ scheduled_at }}`); an unknown name is an
//! error, so a typo is refused when the schedule is saved.

use chrono::{DateTime, Datelike, Duration, DurationRound, SecondsFormat, Utc};
use serde_json::Value;

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 8] = [
    "scheduled_at",
    "hour_start",
    "previous_hour_start",
    "day_start",
    "previous_day_start",
    "week_start",
    "previous_week_start",
    "schedule",
];

/// A template that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TemplateError {
    /// Where in the payload (`filters.from`), empty for the top.
    pub field: String,
    pub message: String,
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn value_of(name: &str, schedule: &str, at: DateTime<Utc>) -> Option<String> {
    let hour = at.duration_trunc(Duration::hours(1)).unwrap_or(at);
    let day = at.duration_trunc(Duration::days(1)).unwrap_or(at);
    let week = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
    Some(match name {
        "scheduled_at" => iso(at.duration_trunc(Duration::seconds(1)).unwrap_or(at)),
        "hour_start" => iso(hour),
        "previous_hour_start" => iso(hour - Duration::hours(1)),
        "day_start" => iso(day),
        "previous_day_start" => iso(day - Duration::days(1)),
        "week_start" => iso(week),
        "previous_week_start" => iso(week - Duration::days(7)),
        "schedule" => schedule.to_owned(),
        _ => return None,
    })
}

fn render_str(
    s: &str,
    schedule: &str,
    at: DateTime<Utc>,
    field: &str,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(TemplateError {
                field: field.to_owned(),
                message: format!(
                    "{s:?} opens a placeholder with {{{{ and never closes it with }}}}"
                ),
            });
        };
        let name = after[..close].trim();
        let v = value_of(name, schedule, at).ok_or_else(|| TemplateError {
            field: field.to_owned(),
            message: format!(
                "unknown placeholder {{{{{name}}}}}: the placeholders are {}",
                PLACEHOLDERS.map(|p| format!("{{{{{p}}}}}")).join(", ")
            ),
        })?;
        out.push_str(&v);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn render_at(
    v: &Value,
    schedule: &str,
    at: DateTime<Utc>,
    field: &str,
) -> Result<Value, TemplateError> {
    let join = |k: &str| {
        if field.is_empty() {
            k.to_owned()
        } else {
            format!("{field}.{k}")
        }
    };
    Ok(match v {
        Value::String(s) => Value::String(render_str(s, schedule, at, field)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| render_at(x, schedule, at, &join(&i.to_string())))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), render_at(x, schedule, at, &join(k))?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// The payload of schedule `schedule`'s fire scheduled at `at`.
pub fn render(template: &Value, schedule: &str, at: DateTime<Utc>) -> Result<Value, TemplateError> {
    render_at(template, schedule, at, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn placeholders_take_the_scheduled_time() {
        let t = at("2026-11-25T01:05:07.250Z"); // a Wednesday
        let v = render(
            &json!({
                "a": "{{scheduled_at}}", "b": "{{ previous_hour_start }}", "c": "{{hour_start}}",
                "d": ["{{previous_day_start}}", "{{day_start}}"],
                "e": {"from": "{{previous_week_start}}", "to": "{{week_start}}"},
                "f": "run of {{schedule}} at {{scheduled_at}}", "g": 3, "h": null
            }),
            "nightly",
            t,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({
                "a": "2026-11-25T01:05:07Z", "b": "2026-11-25T00:00:00Z", "c": "2026-11-25T01:00:00Z",
                "d": ["2026-11-24T00:00:00Z", "2026-11-25T00:00:00Z"],
                "e": {"from": "2026-11-16T00:00:00Z", "to": "2026-11-23T00:00:00Z"},
                "f": "run of nightly at 2026-11-25T01:05:07Z", "g": 3, "h": null
            })
        );
    }

    #[test]
    fn unknown_or_unclosed_placeholders_are_refused_naming_the_field() {
        let t = at("2026-11-25T01:05:00Z");
        let e = render(&json!({"x": {"y": ["{{yesterday}}"]}}), "s", t).unwrap_err();
        assert_eq!(e.field, "x.y.0");
        assert!(
            e.message.contains("unknown placeholder {{yesterday}}"),
            "{e}"
        );
        let e = render(&json!({"x": "{{scheduled_at"}), "s", t).unwrap_err();
        assert_eq!(e.field, "x");
    }
}
