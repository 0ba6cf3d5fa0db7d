-- Purge by source prefix, and retention: when a rendition was last asked
-- for (written in batches by the apis, never once per hit).
ALTER TABLE renditions ADD COLUMN last_hit_at timestamptz NOT NULL DEFAULT now();

CREATE INDEX renditions_source_prefix_idx ON renditions (source_key text_pattern_ops);
CREATE INDEX renditions_last_hit_idx ON renditions (last_hit_at) WHERE status <> 'pending';
