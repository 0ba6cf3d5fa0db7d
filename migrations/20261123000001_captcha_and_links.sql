-- The captcha pool: 16^n slots, each holding at most one captcha. A slot is
-- 'empty' (waiting for a generator), 'generating' (claimed by a worker since
-- claimed_at) or 'ready' (key and PNG set). Verification empties the slot in
-- one conditional UPDATE, so a captcha is answered at most once.
CREATE TABLE captcha_slots (
    slot         text PRIMARY KEY,
    state        text NOT NULL DEFAULT 'empty' CHECK (state IN ('empty', 'generating', 'ready')),
    captcha_key  text,
    image        bytea,
    claimed_at   timestamptz,
    ready_at     timestamptz,
    generation   bigint NOT NULL DEFAULT 0
);

CREATE INDEX captcha_slots_ready_idx ON captcha_slots (slot) WHERE state = 'ready';
CREATE INDEX captcha_slots_todo_idx ON captcha_slots (slot) WHERE state <> 'ready';

-- One-time download links: the token is stored only as its SHA-256.
CREATE TABLE download_links (
    token_hash  bytea PRIMARY KEY,
    object_key  text NOT NULL,
    filename    text NOT NULL,
    uses_left   integer NOT NULL CHECK (uses_left >= 0),
    uses        integer NOT NULL,
    strict      boolean NOT NULL DEFAULT false,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
