-- 50 million events for the shared PostgreSQL store (BENCHMARKS.md section 10): what a fleet
-- of three instances in front of 5,000 employees writes in 180 days (about 280,000 events a
-- day; 1 in 12 flagged, 1 in 50 blocked). Run with psql against a database locgate has already
-- migrated (any `locgate events -c CONFIG` does it); `-v n=50000000` sets the count.
--
-- The secondary indexes are dropped while loading and built again afterwards with the migration's own
-- definitions, as a bulk load should. The `json` column holds the fields the review reads
-- (round-trip time, location precision, network kind) in the event's own shape, about 300
-- bytes, not the full 1.4 KB ECS document: 50 M of those are 70 GB, more than this machine's
-- disk; the queue and timeline queries never read the column.
\set ON_ERROR_STOP on
\if :{?n}
\else
\set n 50000000
\endif
SET synchronous_commit = off;
SET maintenance_work_mem = '512MB';
DROP INDEX IF EXISTS events_ts, events_employee, events_employee_ts, events_queue, events_egress;
\timing on
INSERT INTO events (id, ts_ms, timestamp, action, reasons, employee, ip, country, asn, as_org,
                    lat, lon, accuracy_km, anonymizer, listener, message, instance,
                    tunnel_close, json, egress, verified)
SELECT 'bench-' || g,
       t,
       to_char(to_timestamp(t / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
       act,
       CASE act WHEN 'block' THEN ',sanctioned_country,' WHEN 'flag' THEN ',vpn,outside_radius,'
                ELSE '' END,
       'e' || lpad((hashint4(g) & 4095 + (g % 904))::text, 4, '0'),
       '198.' || (g % 200) || '.' || (g % 251) || '.' || (g % 253),
       CASE act WHEN 'block' THEN 'KP' WHEN 'flag' THEN 'NL' ELSE 'US' END,
       CASE act WHEN 'flag' THEN 9009 ELSE 7922 END,
       CASE act WHEN 'flag' THEN 'M247 Europe SRL' ELSE 'Comcast Cable Communications, LLC' END,
       30.2 + (g % 100) / 100.0, -97.7 - (g % 100) / 100.0, 20,
       act = 'flag',
       'sso',
       CASE act WHEN 'block' THEN 'signed in from North Korea, a sanctioned country'
                WHEN 'flag' THEN 'a commercial VPN (M247); 7,900 km from the declared home'
                ELSE '' END,
       'gw-' || (g % 3),
       false,
       '{"locgate":{"network":{"rtt_ms":' || (20 + g % 180) || ',"mss":1460},'
         || '"location_precision":"city","network_kind":"'
         || CASE act WHEN 'flag' THEN 'vpn' ELSE 'residential' END
         || '","listener":"sso","verdict":"' || act || '"},'
         || '"source":{"ip":"198.' || (g % 200) || '.' || (g % 251) || '.' || (g % 253)
         || '","geo":{"country_iso_code":"US","city_name":"Austin"}}}',
       '198.' || (g % 200) || '.' || (g % 251) || '.' || (g % 253),
       true
FROM (SELECT g,
             (extract(epoch FROM now()) * 1000)::bigint - 180::bigint * 86400000
               + g * (180::bigint * 86400000 / :n) AS t,
             CASE WHEN g % 50 = 0 THEN 'block' WHEN g % 12 = 0 THEN 'flag' ELSE 'allow' END AS act
      FROM generate_series(1, :n) AS g) s;
CREATE INDEX events_ts ON events (ts_ms);
CREATE INDEX events_employee ON events (lower(employee), seq);
CREATE INDEX events_employee_ts ON events (employee, ts_ms) WHERE employee IS NOT NULL;
CREATE INDEX events_queue ON events (seq) WHERE action <> 'allow' AND NOT tunnel_close;
CREATE INDEX events_egress ON events (egress, ts_ms);
VACUUM ANALYZE events;
SELECT pg_size_pretty(pg_total_relation_size('events')) AS events_with_indexes,
       count(*) AS events FROM events;
