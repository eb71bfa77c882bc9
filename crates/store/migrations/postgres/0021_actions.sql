-- Actions (Auth0's Actions): the draft an admin edits, the immutable versions each
-- deploy makes (numbered per action), the order actions run in for a trigger, and what
-- each run of a trigger did. Secrets are one sealed JSON list per action; only their
-- names are ever shown.
CREATE TABLE actions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    trigger_version TEXT NOT NULL,
    runtime TEXT NOT NULL,
    code TEXT NOT NULL,
    dependencies TEXT NOT NULL,
    secrets TEXT NOT NULL,
    deployed_version_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE TABLE action_versions (
    id TEXT PRIMARY KEY,
    action_id TEXT NOT NULL REFERENCES actions (id),
    number BIGINT NOT NULL,
    code TEXT NOT NULL,
    dependencies TEXT NOT NULL,
    runtime TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (action_id, number)
);
CREATE TABLE action_bindings (
    tenant_id TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    action_id TEXT NOT NULL REFERENCES actions (id),
    display_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, trigger_id, position)
);
CREATE INDEX action_bindings_action ON action_bindings (action_id);
CREATE TABLE action_executions (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    trigger_id TEXT NOT NULL,
    status TEXT NOT NULL,
    results TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX action_executions_created ON action_executions (created_at);
