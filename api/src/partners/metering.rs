//! Metered usage of partner keys. Each request adds to an in-memory count per
//! (partner, kind, status class, minute); a flusher writes the counts as one
//! multi-row upsert (minute rows and their hour and day rollups) every
//! `KILN_METER_FLUSH_MS` and once more after the server has stopped taking
//! requests. A failed flush puts its counts back, so nothing is lost while the
//! database is away. The optional audit trail keeps every access and is
//! written with COPY.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, DurationRound as _, TimeDelta, Utc};
use sqlx::postgres::PgPoolCopyExt as _;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::plumbing::metrics as m;

/// One metered request.
pub struct Access<'a> {
    pub partner_id: i64,
    pub kind: &'static str,
    pub status: u16,
    pub bytes: u64,
    pub duration: Duration,
    pub object: &'a str,
    pub client: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Bucket {
    partner_id: i64,
    kind: &'static str,
    status_class: i16,
    minute: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    hits: i64,
    bytes: i64,
    duration_ms: i64,
}

struct AuditRow {
    at: DateTime<Utc>,
    partner_id: i64,
    kind: &'static str,
    object: String,
    status: i16,
    bytes: i64,
    duration_ms: i32,
    client: String,
}

/// How often the next month's `usage_minute` partition is made sure of.
const PARTITION_CHECK: Duration = Duration::from_secs(3600);

/// Audit rows held while the database is away, at most; older ones are dropped
/// (and counted) rather than growing without bound.
const AUDIT_BACKLOG: usize = 200_000;

pub struct Meter {
    counts: Mutex<HashMap<Bucket, Counts>>,
    audit: Option<Mutex<Vec<AuditRow>>>,
}

impl Meter {
    pub fn new(audit: bool) -> Self {
        Self {
            counts: Mutex::new(HashMap::new()),
            audit: audit.then(|| Mutex::new(Vec::new())),
        }
    }

    /// Whether every access is kept (`KILN_AUDIT`).
    pub fn audits(&self) -> bool {
        self.audit.is_some()
    }

    pub fn record(&self, access: &Access<'_>) {
        let now = Utc::now();
        let bucket = Bucket {
            partner_id: access.partner_id,
            kind: access.kind,
            status_class: (access.status / 100).clamp(1, 5) as i16,
            minute: now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now),
        };
        let bytes = i64::try_from(access.bytes).unwrap_or(i64::MAX);
        let duration_ms = i64::try_from(access.duration.as_millis()).unwrap_or(i64::MAX);
        {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            let c = counts.entry(bucket).or_default();
            c.hits += 1;
            c.bytes = c.bytes.saturating_add(bytes);
            c.duration_ms = c.duration_ms.saturating_add(duration_ms);
        }
        if let Some(audit) = &self.audit {
            let row = AuditRow {
                at: now,
                partner_id: access.partner_id,
                kind: access.kind,
                object: access.object.to_owned(),
                status: access.status as i16,
                bytes,
                duration_ms: i32::try_from(duration_ms).unwrap_or(i32::MAX),
                client: access.client.to_owned(),
            };
            audit.lock().unwrap_or_else(|p| p.into_inner()).push(row);
        }
    }

    /// Counts `n` accepted items of one request (a bulk job's items), each
    /// as a metered request of `kind`.
    pub fn record_items(&self, partner_id: i64, kind: &'static str, n: u64) {
        let now = Utc::now();
        let bucket = Bucket {
            partner_id,
            kind,
            status_class: 2,
            minute: now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now),
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.entry(bucket).or_default().hits += i64::try_from(n).unwrap_or(i64::MAX);
    }

    /// Writes what has been counted since the last flush.
    pub async fn flush(&self, db: &PgPool) -> Result<(), sqlx::Error> {
        let counts = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()));
        if !counts.is_empty() {
            if let Err(err) = upsert(db, &counts).await {
                self.put_back(counts);
                return Err(err);
            }
            metrics::counter!(m::METER_ROWS_FLUSHED).increment(counts.len() as u64);
        }
        if let Some(audit) = &self.audit {
            let rows = std::mem::take(&mut *audit.lock().unwrap_or_else(|p| p.into_inner()));
            if !rows.is_empty() {
                if let Err(err) = copy_audit(db, &rows).await {
                    let mut held = audit.lock().unwrap_or_else(|p| p.into_inner());
                    let mut rows = rows;
                    rows.append(&mut held);
                    let excess = rows.len().saturating_sub(AUDIT_BACKLOG);
                    if excess > 0 {
                        metrics::counter!(m::AUDIT_ROWS_DROPPED).increment(excess as u64);
                        rows.drain(..excess);
                    }
                    *held = rows;
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    fn put_back(&self, failed: HashMap<Bucket, Counts>) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for (bucket, c) in failed {
            let held = counts.entry(bucket).or_default();
            held.hits += c.hits;
            held.bytes = held.bytes.saturating_add(c.bytes);
            held.duration_ms = held.duration_ms.saturating_add(c.duration_ms);
        }
    }

    /// Flushes every `interval` until `stop`, then once more (callers stop it
    /// after the server has finished its in-flight requests).
    pub async fn run_flusher(&self, db: PgPool, interval: Duration, stop: CancellationToken) {
        let mut partitions_checked: Option<std::time::Instant> = None;
        loop {
            if partitions_checked.is_none_or(|t| t.elapsed() > PARTITION_CHECK) {
                match kiln_infra::usage::ensure_partitions(&db).await {
                    Ok(()) => partitions_checked = Some(std::time::Instant::now()),
                    Err(err) => tracing::warn!(%err, "cannot create usage partitions"),
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
            if let Err(err) = self.flush(&db).await {
                metrics::counter!(m::METER_FLUSH_FAILURES).increment(1);
                tracing::warn!(%err, "usage flush failed; counts kept for the next one");
            }
        }
        // The last flush may meet a database that is restarting: a few tries.
        for attempt in 1..=5 {
            match self.flush(&db).await {
                Ok(()) => {
                    tracing::info!("usage counts flushed");
                    return;
                }
                Err(err) => {
                    tracing::warn!(%err, attempt, "final usage flush failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        tracing::error!("usage counts could not be flushed at shutdown");
    }
}

/// One statement: minute rows, and the same counts added to the hour and day rollups.
async fn upsert(db: &PgPool, counts: &HashMap<Bucket, Counts>) -> Result<(), sqlx::Error> {
    let n = counts.len();
    let (mut partner, mut kind, mut class, mut minute) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut hits, mut bytes, mut duration) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (b, c) in counts {
        partner.push(b.partner_id);
        kind.push(b.kind);
        class.push(b.status_class);
        minute.push(b.minute);
        hits.push(c.hits);
        bytes.push(c.bytes);
        duration.push(c.duration_ms);
    }
    sqlx::query(
        "WITH batch AS ( \
           SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int2[], $4::timestamptz[], $5::int8[], $6::int8[], $7::int8[]) \
             AS b(partner_id, kind, status_class, minute, hits, bytes, duration_ms)), \
         minutes AS ( \
           INSERT INTO usage_minute SELECT * FROM batch \
           ON CONFLICT (partner_id, kind, status_class, minute) DO UPDATE SET \
             hits = usage_minute.hits + EXCLUDED.hits, bytes = usage_minute.bytes + EXCLUDED.bytes, \
             duration_ms = usage_minute.duration_ms + EXCLUDED.duration_ms), \
         hours AS ( \
           INSERT INTO usage_hour \
           SELECT partner_id, kind, status_class, date_trunc('hour', minute, 'UTC'), sum(hits), sum(bytes), sum(duration_ms) \
           FROM batch GROUP BY 1, 2, 3, 4 \
           ON CONFLICT (partner_id, kind, status_class, hour) DO UPDATE SET \
             hits = usage_hour.hits + EXCLUDED.hits, bytes = usage_hour.bytes + EXCLUDED.bytes, \
             duration_ms = usage_hour.duration_ms + EXCLUDED.duration_ms) \
         INSERT INTO usage_day \
         SELECT partner_id, kind, status_class, (minute AT TIME ZONE 'UTC')::date, sum(hits), sum(bytes), sum(duration_ms) \
         FROM batch GROUP BY 1, 2, 3, 4 \
         ON CONFLICT (partner_id, kind, status_class, day) DO UPDATE SET \
           hits = usage_day.hits + EXCLUDED.hits, bytes = usage_day.bytes + EXCLUDED.bytes, \
           duration_ms = usage_day.duration_ms + EXCLUDED.duration_ms",
    )
    .bind(partner)
    .bind(kind)
    .bind(class)
    .bind(minute)
    .bind(hits)
    .bind(bytes)
    .bind(duration)
    .execute(db)
    .await?;
    Ok(())
}

async fn copy_audit(db: &PgPool, rows: &[AuditRow]) -> Result<(), sqlx::Error> {
    let mut csv = String::with_capacity(rows.len() * 96);
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            r.at.to_rfc3339(),
            r.partner_id,
            r.kind,
            csv_field(&r.object),
            r.status,
            r.bytes,
            r.duration_ms,
            csv_field(&r.client)
        ));
    }
    let mut copy = db
        .copy_in_raw(
            "COPY usage_audit (at, partner_id, kind, object, status, bytes, duration_ms, client) \
             FROM STDIN WITH (FORMAT csv)",
        )
        .await?;
    if let Err(err) = copy.send(csv.into_bytes()).await {
        let _ = copy.abort("send failed").await;
        return Err(err);
    }
    copy.finish().await?;
    Ok(())
}

/// A quoted CSV field (quotes doubled).
fn csv_field(value: &str) -> String {
    format!("\"{}\"", value.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(partner_id: i64, status: u16, bytes: u64) -> Access<'static> {
        Access {
            partner_id,
            kind: "original",
            status,
            bytes,
            duration: Duration::from_millis(3),
            object: "a.jpg",
            client: "127.0.0.1",
        }
    }

    #[test]
    fn requests_add_up_per_partner_kind_and_status_class() {
        let meter = Meter::new(false);
        meter.record(&access(1, 302, 100));
        meter.record(&access(1, 302, 50));
        meter.record(&access(1, 403, 0));
        meter.record(&access(2, 302, 7));
        // Summed over minutes: the records may straddle a minute boundary.
        let mut found = std::collections::BTreeMap::new();
        for (b, c) in meter.counts.lock().unwrap().iter() {
            let entry = found
                .entry((b.partner_id, b.status_class))
                .or_insert((0, 0));
            entry.0 += c.hits;
            entry.1 += c.bytes;
        }
        let found: Vec<_> = found.into_iter().collect();
        assert_eq!(
            found,
            vec![((1, 3), (2, 150)), ((1, 4), (1, 0)), ((2, 3), (1, 7))]
        );
    }

    #[test]
    fn counts_put_back_after_a_failed_flush_merge() {
        let meter = Meter::new(false);
        meter.record(&access(1, 200, 10));
        let taken = std::mem::take(&mut *meter.counts.lock().unwrap());
        meter.record(&access(1, 200, 5));
        meter.put_back(taken);
        let counts = meter.counts.lock().unwrap();
        let total: i64 = counts.values().map(|c| c.hits).sum();
        let bytes: i64 = counts.values().map(|c| c.bytes).sum();
        assert_eq!((total, bytes), (2, 15));
    }

    #[test]
    fn csv_fields_are_quoted() {
        assert_eq!(csv_field(r#"a "b",c"#), r#""a ""b"",c""#);
    }
}
