-- One row per cache key: the claim that makes one render per key, and the
-- remembered outcome (ready, or a permanent failure answered at once).
CREATE TABLE renditions (
    cache_key     text PRIMARY KEY,
    object_key    text NOT NULL,
    kind          text NOT NULL,
    source_key    text NOT NULL,
    source_etag   text NOT NULL,
    options       text NOT NULL,
    status        text NOT NULL CHECK (status IN ('pending', 'ready', 'failed')),
    content_type  text,
    bytes         bigint,
    error_status  smallint,
    error_message text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    queued_at     timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);

CREATE INDEX renditions_source_idx ON renditions (source_key);
CREATE INDEX renditions_pending_idx ON renditions (queued_at) WHERE status = 'pending';
