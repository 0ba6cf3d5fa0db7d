-- Partners and their API keys. A key is shown once and stored only as its
-- SHA-256; it may be limited to path prefixes (empty: every path).
CREATE TABLE partners (
    id               bigserial PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    -- Requests per second (sustained) and burst; NULL: unlimited.
    rate_per_second  integer CHECK (rate_per_second > 0),
    burst            integer CHECK (burst > 0),
    -- Requests per calendar month (UTC); NULL: unlimited.
    monthly_quota    bigint CHECK (monthly_quota > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);

CREATE TABLE partner_keys (
    key_hash       bytea PRIMARY KEY,
    partner_id     bigint NOT NULL REFERENCES partners (id),
    -- The key's first characters, to tell keys apart in listings.
    key_hint       text NOT NULL,
    path_prefixes  text[] NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz
);

CREATE INDEX partner_keys_partner_idx ON partner_keys (partner_id);

-- Metered usage, counted in memory by each api process and flushed as one
-- multi-row upsert a second. Minute rows are partitioned by month (old
-- partitions can be dropped); the same statement adds to the hour and day
-- rollups, so reports never wait for a batch job and drop no late rows.
CREATE TABLE usage_minute (
    partner_id    bigint NOT NULL,
    kind          text NOT NULL,
    status_class  smallint NOT NULL CHECK (status_class BETWEEN 1 AND 5),
    minute        timestamptz NOT NULL,
    hits          bigint NOT NULL,
    bytes         bigint NOT NULL,
    duration_ms   bigint NOT NULL,
    PRIMARY KEY (partner_id, kind, status_class, minute)
) PARTITION BY RANGE (minute);

CREATE TABLE usage_minute_default PARTITION OF usage_minute DEFAULT;

-- Creates the monthly partitions of usage_minute from `first` for `months`
-- months (idempotent). Migrations create this month and the next; the api
-- calls it at start-up and daily.
CREATE FUNCTION kiln_usage_partitions(first date, months integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    start date := date_trunc('month', first)::date;
    name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        name := format('usage_minute_%s', to_char(start, 'YYYY_MM'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF usage_minute FOR VALUES FROM (%L) TO (%L)',
                name, start::timestamptz, (start + interval '1 month')::timestamptz);
        END IF;
        start := (start + interval '1 month')::date;
    END LOOP;
END $$;

SELECT kiln_usage_partitions(now()::date, 2);

CREATE TABLE usage_hour (
    partner_id    bigint NOT NULL,
    kind          text NOT NULL,
    status_class  smallint NOT NULL,
    hour          timestamptz NOT NULL,
    hits          bigint NOT NULL,
    bytes         bigint NOT NULL,
    duration_ms   bigint NOT NULL,
    PRIMARY KEY (partner_id, kind, status_class, hour)
);

CREATE TABLE usage_day (
    partner_id    bigint NOT NULL,
    kind          text NOT NULL,
    status_class  smallint NOT NULL,
    day           date NOT NULL,
    hits          bigint NOT NULL,
    bytes         bigint NOT NULL,
    duration_ms   bigint NOT NULL,
    PRIMARY KEY (partner_id, kind, status_class, day)
);

CREATE INDEX usage_day_day_idx ON usage_day (day);

-- Reports: one row per partner, kind and hour (or UTC day). `errors` counts
-- answers with a 4xx or 5xx status.
CREATE VIEW usage_hourly AS
SELECT p.name AS partner, u.partner_id, u.kind, u.hour,
       sum(u.hits)::bigint AS hits,
       sum(u.bytes)::bigint AS bytes,
       (sum(u.hits) FILTER (WHERE u.status_class >= 4))::bigint AS errors,
       (sum(u.duration_ms) / sum(u.hits))::bigint AS avg_ms
FROM usage_hour u JOIN partners p ON p.id = u.partner_id
GROUP BY p.name, u.partner_id, u.kind, u.hour;

CREATE VIEW usage_daily AS
SELECT p.name AS partner, u.partner_id, u.kind, u.day,
       sum(u.hits)::bigint AS hits,
       sum(u.bytes)::bigint AS bytes,
       (sum(u.hits) FILTER (WHERE u.status_class >= 4))::bigint AS errors,
       (sum(u.duration_ms) / sum(u.hits))::bigint AS avg_ms
FROM usage_day u JOIN partners p ON p.id = u.partner_id
GROUP BY p.name, u.partner_id, u.kind, u.day;

-- The optional audit trail (KILN_AUDIT=true): every metered access, written
-- with COPY. Append-only: rows cannot be changed or deleted (retention drops
-- the table's old data with TRUNCATE by an operator, on purpose).
CREATE TABLE usage_audit (
    at           timestamptz NOT NULL,
    partner_id   bigint NOT NULL,
    kind         text NOT NULL,
    object       text NOT NULL,
    status       smallint NOT NULL,
    bytes        bigint NOT NULL,
    duration_ms  integer NOT NULL,
    client       text NOT NULL
);

CREATE INDEX usage_audit_partner_at_idx ON usage_audit (partner_id, at);

CREATE FUNCTION kiln_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;

CREATE TRIGGER usage_audit_append_only BEFORE UPDATE OR DELETE ON usage_audit
    FOR EACH ROW EXECUTE FUNCTION kiln_append_only();

-- Bulk pre-render jobs. Items wait here and are handed to the queues a few at
-- a time (at low priority), so a big job never fills the queue ahead of
-- on-demand misses and cancelling stops everything not yet handed over.
CREATE TABLE bulk_jobs (
    id              text PRIMARY KEY,
    partner_id      bigint REFERENCES partners (id),
    total           integer NOT NULL,
    already_cached  integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    cancelled_at    timestamptz
);

-- state: 'waiting' (not handed over yet), 'queued' (handed over, rendition
-- pending), 'finished' (rendition ready or failed), 'cached' (was ready at
-- submission), 'failed' (refused before rendering, see error), 'cancelled'.
CREATE TABLE bulk_items (
    job_id       text NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
    n            integer NOT NULL,
    state        text NOT NULL CHECK (state IN ('waiting', 'queued', 'finished', 'cached', 'failed', 'cancelled')),
    kind         text NOT NULL,
    cache_key    text,
    object_key   text,
    source_key   text,
    source_etag  text,
    options      text,
    payload      bytea,
    error        text,
    PRIMARY KEY (job_id, n)
);

CREATE INDEX bulk_items_waiting_idx ON bulk_items (job_id, n) WHERE state = 'waiting';
CREATE INDEX bulk_items_queued_idx ON bulk_items (cache_key) WHERE state = 'queued';
