"""The database schema and its migrations.

``PRAGMA user_version`` holds the schema version and ``PRAGMA application_id`` marks the
file as operator-sim's. Migration ``i`` (0-based) upgrades version ``i`` to ``i + 1``;
each runs in one transaction, so a failed upgrade leaves the old version intact.
Timestamps are integer epoch milliseconds of simulation time.
"""

from __future__ import annotations

APPLICATION_ID = 0x4F50534D  # "OPSM"

_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE clock (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    mode          TEXT NOT NULL CHECK (mode IN ('real', 'scaled', 'manual')),
    scale         REAL NOT NULL CHECK (scale > 0),
    sim_anchor_ms INTEGER NOT NULL,
    wall_anchor   REAL NOT NULL
) STRICT;

CREATE TABLE operators (
    id       TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    position INTEGER NOT NULL
) STRICT;

-- Inclusive ranges of numbers of one length, stored as integers (the digits after '+').
CREATE TABLE number_ranges (
    operator_id TEXT NOT NULL,
    lo          INTEGER NOT NULL,
    hi          INTEGER NOT NULL,
    PRIMARY KEY (lo, hi)
) STRICT;

CREATE TABLE messengers (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    webhook_url    TEXT,
    api_key_hash   TEXT NOT NULL UNIQUE,
    webhook_secret TEXT NOT NULL,
    demo           INTEGER NOT NULL DEFAULT 0,
    source         TEXT NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE subscribers (
    msisdn         TEXT PRIMARY KEY,
    operator_id    TEXT NOT NULL,
    full_name      TEXT,
    birth_date     TEXT,
    passport       TEXT,
    address        TEXT,
    contract_start TEXT,
    contract_end   TEXT,
    data_complete  INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('active', 'terminated')),
    source         TEXT NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE identification_requests (
    id           TEXT PRIMARY KEY,
    messenger_id TEXT NOT NULL,
    operator_id  TEXT NOT NULL,
    msisdn       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'answered', 'expired')),
    result       TEXT CHECK (result IN ('present', 'absent')),
    received_at  INTEGER NOT NULL,
    due_at       INTEGER NOT NULL,
    answered_at  INTEGER,
    rule_id      TEXT
) STRICT;
CREATE INDEX identification_requests_msisdn ON identification_requests (msisdn);
CREATE INDEX identification_requests_messenger ON identification_requests (messenger_id);

CREATE TABLE identification_codes (
    messenger_id  TEXT NOT NULL,
    code          TEXT NOT NULL,
    request_id    TEXT NOT NULL UNIQUE,
    operator_id   TEXT NOT NULL,
    msisdn        TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    PRIMARY KEY (messenger_id, code)
) STRICT;
CREATE INDEX identification_codes_msisdn ON identification_codes (msisdn);

CREATE TABLE idempotency_keys (
    messenger_id TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (messenger_id, key)
) STRICT;

-- Every identification POST that passed validation, including refused and replayed ones.
CREATE TABLE journal (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    messenger_id TEXT NOT NULL,
    operator_id  TEXT NOT NULL,
    msisdn       TEXT NOT NULL,
    request_id   TEXT,
    http_status  INTEGER NOT NULL,
    rule_id      TEXT,
    replayed     INTEGER NOT NULL,
    received_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX journal_messenger ON journal (messenger_id, id);
CREATE INDEX journal_msisdn ON journal (msisdn, id);

CREATE TABLE rules (
    id       TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    source   TEXT NOT NULL CHECK (source IN ('fixture', 'runtime')),
    spec     TEXT NOT NULL,
    hits     INTEGER NOT NULL DEFAULT 0  -- requests the rule applied to (shown by the admin API)
) STRICT;

CREATE TABLE rule_counters (
    rule_id TEXT NOT NULL,
    scope   TEXT NOT NULL,
    hits    INTEGER NOT NULL,
    PRIMARY KEY (rule_id, scope)
) STRICT;

-- The transactional outbox: one row per notification to one messenger. ``body`` is the
-- event JSON exactly as the feed and the webhook deliver it.
CREATE TABLE events (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    id                   TEXT NOT NULL UNIQUE,
    messenger_id         TEXT NOT NULL,
    operator_id          TEXT NOT NULL,
    type                 TEXT NOT NULL,
    occurred_at          INTEGER NOT NULL,
    deliver_by           INTEGER NOT NULL,
    body                 TEXT NOT NULL,
    feed_delivered_at    INTEGER,
    webhook_url          TEXT,
    webhook_state        TEXT CHECK (webhook_state IN ('pending', 'delivered', 'failed')),
    webhook_base         INTEGER,
    webhook_attempt      INTEGER NOT NULL DEFAULT 0,
    webhook_next_at      INTEGER,
    webhook_delivered_at INTEGER
) STRICT;
CREATE INDEX events_feed ON events (messenger_id, operator_id, seq);
CREATE INDEX events_webhook_due ON events (webhook_next_at) WHERE webhook_state = 'pending';

CREATE TABLE delivery_attempts (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    attempt  INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    status   INTEGER,
    error    TEXT
) STRICT;
CREATE INDEX delivery_attempts_event ON delivery_attempts (event_id, id);

-- Scheduled work, fired in (due_at, id) order by the scheduler.
CREATE TABLE jobs (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    due_at  INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    ref     TEXT NOT NULL,
    payload TEXT
) STRICT;
CREATE INDEX jobs_due ON jobs (due_at, id);
CREATE INDEX jobs_ref ON jobs (ref);
"""

# Version 2 drops two indexes on msisdn that cost every identification POST a write to a
# random page (and every commit those pages): nothing reads identification_requests by
# number, and the journal (capped, 100,000 entries by default) is filtered by number only
# from the admin API, where scanning it is cheap enough.
_V2 = """
DROP INDEX identification_requests_msisdn;
DROP INDEX journal_msisdn;
"""

# Version 3: fault rules draw their random numbers by position, per messenger, so that a
# unit of work reads its draws from the database and keeps nothing outside itself (it
# may run twice); and idempotency keys are found by their request, for retention.
_V3 = """
CREATE TABLE rule_draws (
    messenger_id TEXT PRIMARY KEY,
    position     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_keys_request ON idempotency_keys (request_id);
"""

# Version 4: the journal records every messenger-facing call (its endpoint, method and
# path; the operator and the number where the call has them), and ended codes are kept
# with how they ended, for the admin's view of codes.
_V4 = """
CREATE TABLE journal_v4 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    messenger_id TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    operator_id  TEXT,
    msisdn       TEXT,
    request_id   TEXT,
    http_status  INTEGER NOT NULL,
    rule_id      TEXT,
    replayed     INTEGER NOT NULL,
    received_at  INTEGER NOT NULL
) STRICT;
INSERT INTO journal_v4 (id, messenger_id, endpoint, method, path, operator_id, msisdn,
                        request_id, http_status, rule_id, replayed, received_at)
SELECT id, messenger_id, 'identification.create', 'POST',
       '/operators/' || operator_id || '/v1/identification-requests', operator_id, msisdn,
       request_id, http_status, rule_id, replayed, received_at
FROM journal ORDER BY id;
DROP TABLE journal;
ALTER TABLE journal_v4 RENAME TO journal;
CREATE INDEX journal_messenger ON journal (messenger_id, id);

CREATE TABLE ended_codes (
    messenger_id  TEXT NOT NULL,
    code          TEXT NOT NULL,
    request_id    TEXT NOT NULL,
    operator_id   TEXT NOT NULL,
    msisdn        TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    ended_at      INTEGER NOT NULL,
    ended_by      TEXT NOT NULL
        CHECK (ended_by IN ('deleted', 'contract_terminated', 'number_ported'))
) STRICT;
CREATE INDEX ended_codes_ended ON ended_codes (ended_at);

-- A fault rule can have an event delivered several times (the same id), on both channels.
ALTER TABLE events ADD COLUMN copies INTEGER NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN webhook_copy INTEGER NOT NULL DEFAULT 0;
"""

# Version 5: credential rotation, and subscribers listed by operator.
#
# A messenger's previous API key (hashed) and previous webhook secret keep working until a
# wall-clock time (epoch milliseconds: grace periods are about real clients changing
# credentials, not simulation time).
#
# Listing one operator's subscribers walks that operator's number ranges in the table's
# own key. That finds every seeded record (seeding writes numbers of their operator's
# ranges), but not a record held outside its operator's ranges: one written by the admin
# API or a fixture, or one a port moved (``moved``). Those, and only those, are in a
# partial index by operator. An index of every record by operator would cost seeding
# about a sixth of its speed; this one costs nothing measurable, since no seeded row
# enters it (scripts/bench_seed_index.py).
_V5 = """
ALTER TABLE messengers ADD COLUMN previous_key_hash TEXT;
ALTER TABLE messengers ADD COLUMN previous_key_until INTEGER;
ALTER TABLE messengers ADD COLUMN previous_webhook_secret TEXT;
ALTER TABLE messengers ADD COLUMN previous_secret_until INTEGER;
CREATE UNIQUE INDEX messengers_previous_key ON messengers (previous_key_hash);
ALTER TABLE subscribers ADD COLUMN moved INTEGER NOT NULL DEFAULT 0;
CREATE INDEX subscribers_unseeded ON subscribers (operator_id, msisdn)
    WHERE source <> 'seed' OR moved = 1;
"""

# Version 6: the SMS gateway (messages, and the phones' inboxes, the only place a message's
# text is kept once the phone has it) and SIM swaps (the latest per number, a subscriber
# fact kept apart from the record so that an upsert of the record does not lose it).
_V6 = """
CREATE TABLE sms_messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    messenger_id TEXT NOT NULL,
    msisdn       TEXT NOT NULL,
    sender       TEXT NOT NULL,
    text         TEXT,  -- kept until the phone receives the message or it fails
    text_length  INTEGER NOT NULL,
    segments     INTEGER NOT NULL,
    encoding     TEXT NOT NULL CHECK (encoding IN ('gsm7', 'ucs2')),
    client_ref   TEXT,
    status       TEXT NOT NULL CHECK (status IN
                 ('accepted', 'sent', 'delivered', 'undelivered', 'expired', 'rejected')),
    reason       TEXT,
    operator_id  TEXT,
    behaviour    TEXT CHECK (behaviour IN ('unreachable', 'report_lost', 'blocked')),
    delay_ms     INTEGER NOT NULL,
    rule_id      TEXT,
    created_at   INTEGER NOT NULL,
    status_at    INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;
-- The per-number throttle counts one messenger's recent messages to one number.
CREATE INDEX sms_messages_throttle ON sms_messages (messenger_id, msisdn, created_at);
CREATE INDEX sms_messages_messenger ON sms_messages (messenger_id, seq);

CREATE TABLE phone_messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    msisdn       TEXT NOT NULL,
    sms_id       TEXT NOT NULL,
    sms_seq      INTEGER NOT NULL,
    messenger_id TEXT NOT NULL,
    sender       TEXT NOT NULL,
    text         TEXT NOT NULL,
    received_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX phone_messages_msisdn ON phone_messages (msisdn, seq);
CREATE INDEX phone_messages_messenger ON phone_messages (messenger_id);

CREATE TABLE sim_swaps (
    msisdn     TEXT PRIMARY KEY,
    swapped_at INTEGER NOT NULL,
    source     TEXT NOT NULL CHECK (source IN ('fixture', 'admin'))
) STRICT, WITHOUT ROWID;
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
"""``MIGRATIONS[i]`` upgrades a database at version ``i`` to version ``i + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)
