-- The queue-layout experiment of docs/benchmarks-history.md ("Third round"):
-- Postgres CPU per delivery for a claim and a completion of 128 rows,
-- with today's `deliveries` (A) and with the queue apart from the record
-- (B: a small `queue_b` row deleted at completion; the record updated HOT
-- where its page has room). Not run by the suite; to repeat:
--
--   psql -h HOST -p PORT -U postgres -f bench/sql/queue_layout.sql
--   psql ... -d qx -c "SELECT fill(300000)" -c "SELECT fill_b()" -c "SELECT fill_h()" \
--                  -c "VACUUM ANALYZE" -c CHECKPOINT
--   echo 'SELECT cycle_a(128);' > a.sql            # today's layout
--   echo 'SELECT cycle_b(128, true);' > b.sql      # queue apart, attempt rows kept
--   echo 'SELECT cycle_b(128, false);' > b0.sql    # ... and no row for a first-try success
--   echo 'SELECT cycle_c(128);' > c.sql            # a claim that writes nothing (fifth round)
--   echo 'SELECT cycle_p(128, 512);' > p.sql       # ... skipping 512 deliveries in flight
--   echo 'SELECT cycle_k(128);' > k.sql            # A, claims from an exact head (eighth round)
--   echo 'SELECT cycle_h(128);' > h.sql            # ... and a claim that is a HOT update
--   pgbench -h HOST -p PORT -U postgres -n -c 2 -j 2 -t 500 -f a.sql qx
--
-- and read the cluster's CPU seconds (postmaster and its children, from
-- /proc) before and after each pgbench run. Each cycle runs in one
-- transaction (the dispatcher commits claim and completion apart), which
-- favours neither layout. C and P take no lock and write no lease, and K
-- and H keep one head each, so run them (and A, to compare) with one
-- client: `-c 1 -j 1`.
DROP DATABASE IF EXISTS qx;
CREATE DATABASE qx;
\c qx
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TABLE events (
    id uuid PRIMARY KEY, partner_id uuid NOT NULL, notification_type integer NOT NULL,
    payload bytea NOT NULL, idempotency_key text, is_test boolean NOT NULL DEFAULT false,
    has_subscriber boolean NOT NULL, occurred_at timestamptz NOT NULL, trace_context text,
    created_at timestamptz NOT NULL DEFAULT now(), delivery_id uuid);
CREATE UNIQUE INDEX events_idempotency_idx ON events (partner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_partner_deliveries_idx ON events (partner_id, notification_type, created_at) WHERE delivery_id IS NOT NULL;
-- A: today's deliveries
CREATE TABLE deliveries (
    id uuid PRIMARY KEY, event_id uuid NOT NULL, partner_id uuid NOT NULL, notification_type integer NOT NULL,
    is_test boolean NOT NULL DEFAULT false, status text NOT NULL DEFAULT 'pending',
    attempt_count integer NOT NULL DEFAULT 0, series_attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(), lease_token uuid, last_error text,
    last_response_status integer, created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(), completed_at timestamptz);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE TABLE attempts (
    delivery_id uuid NOT NULL, attempt_number integer NOT NULL, registration_id uuid,
    started_at timestamptz NOT NULL, duration_ms integer NOT NULL, response_status integer,
    error text, response_excerpt text NOT NULL DEFAULT '', PRIMARY KEY (delivery_id, attempt_number));
-- B: record apart from a small queue row
CREATE TABLE deliveries_b (
    id uuid PRIMARY KEY, event_id uuid NOT NULL, partner_id uuid NOT NULL, notification_type integer NOT NULL,
    is_test boolean NOT NULL DEFAULT false, status text NOT NULL DEFAULT 'pending',
    attempt_count integer NOT NULL DEFAULT 0, series_attempts integer NOT NULL DEFAULT 0,
    last_error text, last_response_status integer, created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(), completed_at timestamptz) WITH (fillfactor = 60);
CREATE TABLE queue_b (delivery_id uuid PRIMARY KEY, next_attempt_at timestamptz NOT NULL DEFAULT now(), lease_token uuid);
CREATE INDEX queue_b_due_idx ON queue_b (next_attempt_at);
CREATE TABLE attempts_b (LIKE attempts INCLUDING ALL);

CREATE OR REPLACE FUNCTION fill(n int) RETURNS void LANGUAGE sql AS $$
  WITH e AS (
    INSERT INTO events (id, partner_id, notification_type, payload, has_subscriber, occurred_at, delivery_id)
    SELECT (lpad(to_hex(1000000000000 + g), 12, '0') || substr(md5(random()::text), 1, 20))::uuid,
           ('00000000-0000-0000-0000-' || lpad(to_hex(g % 100), 12, '0'))::uuid, 5,
           convert_to('{"processUniqueId":"bench-' || g || '","amount":' || g || ',"status":"settled"}', 'UTF8'),
           true, now(), gen_random_uuid()
    FROM generate_series(1, n) g
    RETURNING id, partner_id, delivery_id)
  INSERT INTO deliveries (id, event_id, partner_id, notification_type) SELECT delivery_id, id, partner_id, 5 FROM e;
$$;
CREATE OR REPLACE FUNCTION fill_b() RETURNS void LANGUAGE sql AS $$
  INSERT INTO deliveries_b (id, event_id, partner_id, notification_type) SELECT id, event_id, partner_id, 5 FROM deliveries;
  INSERT INTO queue_b (delivery_id) SELECT id FROM deliveries;
$$;
-- A's completion of the claimed `ids` under their tokens `toks`.
CREATE OR REPLACE FUNCTION complete_a(ids uuid[], toks uuid[]) RETURNS int LANGUAGE plpgsql AS $$
DECLARE k int;
BEGIN
  WITH input AS (SELECT * FROM unnest(ids, toks) AS t(id, token)),
  updated AS (UPDATE deliveries d SET status = 'delivered', next_attempt_at = now(), lease_token = NULL,
        attempt_count = d.attempt_count + 1, series_attempts = d.series_attempts + 1, last_error = NULL,
        last_response_status = 204, updated_at = now(), completed_at = now()
        FROM input i WHERE d.id = i.id AND d.lease_token = i.token RETURNING d.id, d.attempt_count),
  logged AS (INSERT INTO attempts (delivery_id, attempt_number, registration_id, started_at, duration_ms, response_status, error, response_excerpt)
        SELECT id, attempt_count, NULL, now(), 1, 204, NULL, '' FROM updated)
  SELECT count(*) INTO k FROM updated;
  RETURN k;
END $$;
CREATE OR REPLACE FUNCTION cycle_a(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE ids uuid[]; toks uuid[];
BEGIN
  WITH due AS (SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT n FOR UPDATE SKIP LOCKED),
  c AS (UPDATE deliveries d SET lease_token = gen_random_uuid(), next_attempt_at = now() + interval '60 s', updated_at = now()
        FROM due, events e WHERE d.id = due.id AND e.id = d.event_id
        RETURNING d.id, d.lease_token, d.attempt_count, e.payload)
  SELECT array_agg(id), array_agg(lease_token) INTO ids, toks FROM c;
  RETURN complete_a(ids, toks);
END $$;
CREATE OR REPLACE FUNCTION cycle_b(n int, log_first boolean) RETURNS int LANGUAGE plpgsql AS $$
DECLARE ids uuid[]; toks uuid[]; k int;
BEGIN
  WITH due AS (SELECT delivery_id FROM queue_b WHERE next_attempt_at <= now()
               ORDER BY next_attempt_at LIMIT n FOR UPDATE SKIP LOCKED),
  c AS (UPDATE queue_b q SET lease_token = gen_random_uuid(), next_attempt_at = now() + interval '60 s'
        FROM due WHERE q.delivery_id = due.delivery_id RETURNING q.delivery_id, q.lease_token)
  SELECT array_agg(c.delivery_id), array_agg(c.lease_token) INTO ids, toks
  FROM c JOIN deliveries_b d ON d.id = c.delivery_id JOIN events e ON e.id = d.event_id;
  WITH input AS (SELECT * FROM unnest(ids, toks) AS t(id, token)),
  gone AS (DELETE FROM queue_b q USING input i WHERE q.delivery_id = i.id AND q.lease_token = i.token RETURNING q.delivery_id),
  updated AS (UPDATE deliveries_b d SET status = 'delivered', attempt_count = d.attempt_count + 1,
        series_attempts = d.series_attempts + 1, last_error = NULL, last_response_status = 204,
        updated_at = now(), completed_at = now()
        FROM gone g WHERE d.id = g.delivery_id RETURNING d.id, d.attempt_count),
  logged AS (INSERT INTO attempts_b (delivery_id, attempt_number, registration_id, started_at, duration_ms, response_status, error, response_excerpt)
        SELECT id, attempt_count, NULL, now(), 1, 204, NULL, '' FROM updated WHERE log_first)
  SELECT count(*) INTO k FROM updated;
  RETURN k;
END $$;

-- C: the claim as a plain read, the completion fenced by the status alone.
-- The lower bound of a queue whose deliveries are not leased one by one
-- (replicas owning partitions of it instead): what the claim's write costs.
CREATE OR REPLACE FUNCTION complete_unleased(ids uuid[]) RETURNS int LANGUAGE plpgsql AS $$
DECLARE k int;
BEGIN
  WITH input AS (SELECT * FROM unnest(ids) AS t(id)),
  updated AS (UPDATE deliveries d SET status = 'delivered', next_attempt_at = now(), lease_token = NULL,
        attempt_count = d.attempt_count + 1, series_attempts = d.series_attempts + 1, last_error = NULL,
        last_response_status = 204, updated_at = now(), completed_at = now()
        FROM input i WHERE d.id = i.id AND d.status = 'pending' RETURNING d.id, d.attempt_count),
  logged AS (INSERT INTO attempts (delivery_id, attempt_number, registration_id, started_at, duration_ms, response_status, error, response_excerpt)
        SELECT id, attempt_count, NULL, now(), 1, 204, NULL, '' FROM updated)
  SELECT count(*) INTO k FROM updated;
  RETURN k;
END $$;
CREATE OR REPLACE FUNCTION cycle_c(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE ids uuid[];
BEGIN
  WITH c AS (SELECT d.id, d.attempt_count, e.payload FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.status = 'pending' AND d.next_attempt_at <= now()
             ORDER BY d.next_attempt_at LIMIT n)
  SELECT array_agg(id) INTO ids FROM c;
  RETURN complete_unleased(ids);
END $$;
-- P: C, but the first `held` due deliveries are in flight (still due, as
-- nothing marks them) and every claim must pass over them. Includes
-- reading the held ids, which a dispatcher would have in memory.
CREATE OR REPLACE FUNCTION cycle_p(n int, held int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE ids uuid[]; hold uuid[];
BEGIN
  SELECT coalesce(array_agg(id), '{}') INTO hold FROM (SELECT id FROM deliveries WHERE status = 'pending'
        AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT held) h;
  WITH c AS (SELECT d.id, d.attempt_count, e.payload FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND d.id <> ALL(hold)
             ORDER BY d.next_attempt_at LIMIT n)
  SELECT array_agg(id) INTO ids FROM c;
  RETURN complete_unleased(ids);
END $$;

-- K and H (eighth round; docs/benchmarks-history.md): claims that go on from the
-- exact place (due time, id) where the last one stopped, kept in `head`.
-- K: today's layout (A), its claim reading from an exact head.
CREATE INDEX deliveries_due_k ON deliveries (next_attempt_at, id) WHERE status = 'pending';
DROP INDEX deliveries_due_idx;
CREATE TABLE head (name text PRIMARY KEY, at timestamptz NOT NULL, id uuid NOT NULL);
INSERT INTO head VALUES ('k', '-infinity', '00000000-0000-0000-0000-000000000000'),
                        ('h', '-infinity', '00000000-0000-0000-0000-000000000000');
CREATE OR REPLACE FUNCTION cycle_k(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE ids uuid[]; toks uuid[]; hat timestamptz; hid uuid; lat timestamptz; lid uuid;
BEGIN
  SELECT at, id INTO hat, hid FROM head WHERE name = 'k';
  WITH due AS (SELECT id, next_attempt_at FROM deliveries WHERE status = 'pending' AND (next_attempt_at, id) > (hat, hid)
               AND next_attempt_at <= now()
               ORDER BY next_attempt_at, id LIMIT n FOR UPDATE SKIP LOCKED),
  c AS (UPDATE deliveries d SET lease_token = gen_random_uuid(), next_attempt_at = now() + interval '60 s', updated_at = now()
        FROM due, events e WHERE d.id = due.id AND e.id = d.event_id
        RETURNING d.id, d.lease_token, d.attempt_count, e.payload, due.next_attempt_at AS was)
  SELECT array_agg(id), array_agg(lease_token), (array_agg(was ORDER BY was DESC, id DESC))[1], (array_agg(id ORDER BY was DESC, id DESC))[1] INTO ids, toks, lat, lid FROM c;
  UPDATE head SET at = lat, id = lid WHERE name = 'k';
  RETURN complete_a(ids, toks);
END $$;
-- H: the claim marks the lease in `leased_until`, which no index holds, and
-- leaves the due time alone: a HOT update where the page has room (hence
-- the fillfactor). The claimed delivery stays in the due index, still due;
-- a claim from the head does not step over it.
CREATE TABLE deliveries_h (
    id uuid PRIMARY KEY, event_id uuid NOT NULL, partner_id uuid NOT NULL, notification_type integer NOT NULL,
    is_test boolean NOT NULL DEFAULT false, status text NOT NULL DEFAULT 'pending',
    attempt_count integer NOT NULL DEFAULT 0, series_attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(), lease_token uuid, leased_until timestamptz, last_error text,
    last_response_status integer, created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(), completed_at timestamptz) WITH (fillfactor = 50);
CREATE INDEX deliveries_h_due ON deliveries_h (next_attempt_at, id) WHERE status = 'pending';
CREATE TABLE attempts_h (LIKE attempts INCLUDING ALL);
CREATE OR REPLACE FUNCTION fill_h() RETURNS void LANGUAGE sql AS $$
  INSERT INTO deliveries_h (id, event_id, partner_id, notification_type) SELECT id, event_id, partner_id, 5 FROM deliveries;
$$;
CREATE OR REPLACE FUNCTION cycle_h(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE ids uuid[]; toks uuid[]; k int; hat timestamptz; hid uuid; lat timestamptz; lid uuid;
BEGIN
  SELECT at, id INTO hat, hid FROM head WHERE name = 'h';
  WITH due AS (SELECT id, next_attempt_at FROM deliveries_h WHERE status = 'pending' AND (next_attempt_at, id) > (hat, hid)
               AND next_attempt_at <= now() AND (leased_until IS NULL OR leased_until < now())
               ORDER BY next_attempt_at, id LIMIT n FOR UPDATE SKIP LOCKED),
  c AS (UPDATE deliveries_h d SET lease_token = gen_random_uuid(), leased_until = now() + interval '60 s', updated_at = now()
        FROM due, events e WHERE d.id = due.id AND e.id = d.event_id
        RETURNING d.id, d.lease_token, d.attempt_count, e.payload, due.next_attempt_at AS was)
  SELECT array_agg(id), array_agg(lease_token), (array_agg(was ORDER BY was DESC, id DESC))[1], (array_agg(id ORDER BY was DESC, id DESC))[1] INTO ids, toks, lat, lid FROM c;
  UPDATE head SET at = lat, id = lid WHERE name = 'h';
  WITH input AS (SELECT * FROM unnest(ids, toks) AS t(id, token)),
  updated AS (UPDATE deliveries_h d SET status = 'delivered', next_attempt_at = now(), lease_token = NULL, leased_until = NULL,
        attempt_count = d.attempt_count + 1, series_attempts = d.series_attempts + 1, last_error = NULL,
        last_response_status = 204, updated_at = now(), completed_at = now()
        FROM input i WHERE d.id = i.id AND d.lease_token = i.token RETURNING d.id, d.attempt_count),
  logged AS (INSERT INTO attempts_h (delivery_id, attempt_number, registration_id, started_at, duration_ms, response_status, error, response_excerpt)
        SELECT id, attempt_count, NULL, now(), 1, 204, NULL, '' FROM updated)
  SELECT count(*) INTO k FROM updated;
  RETURN k;
END $$;
