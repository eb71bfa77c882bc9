-- One row per limited key (a user's sends, a Verify service's windows): taking its row
-- lock in a transaction serializes count-then-record, so concurrent requests, on one
-- instance or several, cannot all see room under a limit.
CREATE TABLE limit_locks (
    key TEXT PRIMARY KEY
);
