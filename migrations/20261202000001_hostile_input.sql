-- Poison-message memory: the attempt number of the last delivery a worker
-- began rendering, and how many times a delivery of that same attempt was
-- begun again (its worker died before settling it). Past a configured count
-- the rendition is failed instead of handed to yet another worker.
ALTER TABLE renditions
    ADD COLUMN render_attempt integer,
    ADD COLUMN crashes integer NOT NULL DEFAULT 0;

-- Captchas are issued to one client at a time: a ready slot is leased
-- ('issued', with a random lease the client gets back with its captcha) and
-- only an answer carrying that lease consumes it. Leases expire: the slot
-- becomes ready again, and the old lease answers nothing.
ALTER TABLE captcha_slots
    ADD COLUMN lease text,
    ADD COLUMN issued_at timestamptz,
    DROP CONSTRAINT captcha_slots_state_check,
    ADD CONSTRAINT captcha_slots_state_check
        CHECK (state IN ('empty', 'generating', 'ready', 'issued'));

CREATE INDEX captcha_slots_issued_idx ON captcha_slots (issued_at) WHERE state = 'issued';
