-- The fraud guard's conversion check counts a prefix's verifications and how many were
-- approved in a window: with the status in the index it reads the index alone, not
-- every verification's row.
DROP INDEX verifications_prefix;
CREATE INDEX verifications_prefix_status ON verifications(service_sid, prefix, created_at, status);
