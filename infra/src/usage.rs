//! Usage reports over the `usage_hourly` and `usage_daily` views.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;
use sqlx::PgPool;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
}

impl Period {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }

    /// The longest range one report may span (bounds its size).
    pub fn longest_range(self) -> TimeDelta {
        match self {
            Self::Hour => TimeDelta::days(31),
            Self::Day => TimeDelta::days(732),
        }
    }
}

/// One report row: a partner's usage of one kind in one hour or day.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UsageRow {
    pub partner: String,
    pub kind: String,
    /// Start of the hour or day (UTC).
    pub period: DateTime<Utc>,
    pub hits: i64,
    pub bytes: i64,
    pub errors: i64,
    pub avg_ms: i64,
}

/// `from` and `to` as a user writes them: RFC 3339, or a date (midnight UTC).
pub fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Rows of the hours or days that start in `[from, to)` — the one holding
/// `from` included — for one partner (`Some(id)`) or all, ordered by
/// period, partner and kind.
pub async fn report(
    pool: &PgPool,
    period: Period,
    partner_id: Option<i64>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageRow>, sqlx::Error> {
    let sql = match period {
        Period::Hour => {
            "SELECT partner, kind, hour AS period, hits, bytes, COALESCE(errors, 0) AS errors, avg_ms \
             FROM usage_hourly WHERE ($1::int8 IS NULL OR partner_id = $1) AND hour >= date_trunc('hour', $2, 'UTC') AND hour < $3 \
             ORDER BY period, partner, kind"
        }
        Period::Day => {
            "SELECT partner, kind, (day::timestamp AT TIME ZONE 'UTC') AS period, hits, bytes, \
             COALESCE(errors, 0) AS errors, avg_ms \
             FROM usage_daily WHERE ($1::int8 IS NULL OR partner_id = $1) \
             AND day >= ($2 AT TIME ZONE 'UTC')::date AND (day::timestamp AT TIME ZONE 'UTC') < $3 \
             ORDER BY period, partner, kind"
        }
    };
    sqlx::query_as(sql)
        .bind(partner_id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await
}

/// The rows as CSV with a header line.
pub fn to_csv(rows: &[UsageRow]) -> String {
    // The csv crate quotes and escapes every field that needs it.
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record([
        "partner", "kind", "period", "hits", "bytes", "errors", "avg_ms",
    ]);
    for r in rows {
        let _ = writer.write_record([
            r.partner.as_str(),
            r.kind.as_str(),
            &r.period.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            &r.hits.to_string(),
            &r.bytes.to_string(),
            &r.errors.to_string(),
            &r.avg_ms.to_string(),
        ]);
    }
    writer
        .into_inner()
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// Creates this month's and next month's `usage_minute` partitions if missing.
pub async fn ensure_partitions(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT kiln_usage_partitions((now() AT TIME ZONE 'UTC')::date, 2)")
        .execute(pool)
        .await?;
    Ok(())
}

/// A partner's id by name.
pub async fn partner_id(pool: &PgPool, name: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM partners WHERE name = $1")
        .bind(name)
        .fetch_optional(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_rfc3339_or_dates() {
        assert_eq!(
            parse_instant("2026-11-23").unwrap().to_rfc3339(),
            "2026-11-23T00:00:00+00:00"
        );
        assert_eq!(
            parse_instant("2026-11-23T10:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-23T08:00:00+00:00"
        );
        assert!(parse_instant("yesterday").is_none());
    }

    #[test]
    fn csv_has_a_header_and_one_line_per_row() {
        let row = UsageRow {
            partner: "acme".into(),
            kind: "original".into(),
            period: parse_instant("2026-11-23").unwrap(),
            hits: 3,
            bytes: 300,
            errors: 1,
            avg_ms: 2,
        };
        assert_eq!(
            to_csv(&[row]),
            "partner,kind,period,hits,bytes,errors,avg_ms\nacme,original,2026-11-23T00:00:00Z,3,300,1,2\n"
        );
    }

    #[test]
    fn csv_fields_with_separators_are_quoted() {
        let row = UsageRow {
            partner: "a,b".into(),
            kind: "say \"hi\"\nthere".into(),
            period: parse_instant("2026-11-23").unwrap(),
            hits: 1,
            bytes: 0,
            errors: 0,
            avg_ms: 0,
        };
        let csv = to_csv(&[row]);
        let line = csv.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(
            line,
            "\"a,b\",\"say \"\"hi\"\"\nthere\",2026-11-23T00:00:00Z,1,0,0,0"
        );
    }
}
