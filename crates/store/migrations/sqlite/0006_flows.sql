-- Flows, number bindings and runs, SQLite dialect.
CREATE TABLE flows (
    sid TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    friendly_name TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE flow_numbers (
    number TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    flow_sid TEXT NOT NULL REFERENCES flows(sid) ON DELETE CASCADE
);

CREATE TABLE flow_runs (
    sid TEXT PRIMARY KEY,
    flow_sid TEXT NOT NULL,
    status TEXT NOT NULL,
    current_state TEXT,
    context TEXT NOT NULL,
    steps TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX flow_runs_flow ON flow_runs(flow_sid, created_at);
CREATE INDEX flow_runs_status ON flow_runs(status);
