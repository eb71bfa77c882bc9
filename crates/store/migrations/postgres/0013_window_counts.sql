-- Fraud-guard windows count in buckets: one row per key and bucket says how many sends
-- (or verifications started, or approved) fell in it, so a window's count reads at most
-- a few hundred rows however busy its key is. A bucket is named by its end: a window
-- beginning at `since` counts every bucket ending after it, so a count errs only on
-- the side of the limit. The per-number window still counts verify_sends rows (a number
-- has a handful), which also keep the history the windows were counted from.
CREATE TABLE verify_counts (
    service_sid TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    bucket_end BIGINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (service_sid, kind, value, bucket_end)
);
CREATE INDEX verify_counts_end ON verify_counts(bucket_end);

-- What the windows held before: one-second buckets from the rows they counted.
INSERT INTO verify_counts (service_sid, kind, value, bucket_end, n)
SELECT service_sid, 'prefix', prefix, (at / 1000) * 1000 + 1000, COUNT(*) FROM verify_sends GROUP BY 1, 2, 3, 4;
INSERT INTO verify_counts (service_sid, kind, value, bucket_end, n)
SELECT service_sid, 'ip', ip, (at / 1000) * 1000 + 1000, COUNT(*) FROM verify_sends WHERE ip IS NOT NULL GROUP BY 1, 2, 3, 4;
INSERT INTO verify_counts (service_sid, kind, value, bucket_end, n)
SELECT service_sid, 'service', service_sid, (at / 1000) * 1000 + 1000, COUNT(*) FROM verify_sends GROUP BY 1, 2, 3, 4;
INSERT INTO verify_counts (service_sid, kind, value, bucket_end, n)
SELECT service_sid, 'started', prefix, (created_at / 1000) * 1000 + 1000, COUNT(*) FROM verifications GROUP BY 1, 2, 3, 4;
INSERT INTO verify_counts (service_sid, kind, value, bucket_end, n)
SELECT service_sid, 'approved', prefix, (created_at / 1000) * 1000 + 1000, COUNT(*) FROM verifications
WHERE status = 'approved' GROUP BY 1, 2, 3, 4;

-- Only the per-number window and purging read verify_sends now; nothing reads
-- verifications by prefix.
DROP INDEX verify_sends_prefix;
DROP INDEX verify_sends_ip;
DROP INDEX verify_sends_service;
CREATE INDEX verify_sends_at ON verify_sends(at);
DROP INDEX verifications_prefix_status;
