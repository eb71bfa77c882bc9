-- A running flow run is leased by the instance executing it, renewed at every step;
-- only runs whose lease ran out (their instance is gone) are failed by another.
ALTER TABLE flow_runs ADD COLUMN lease_until BIGINT;
