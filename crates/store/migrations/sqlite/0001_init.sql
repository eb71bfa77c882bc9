-- Tessera schema, SQLite dialect. Times are Unix milliseconds; ids are UUID text.
CREATE TABLE bootstrap (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    tenant_id TEXT NOT NULL
);

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE applications (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX applications_tenant ON applications(tenant_id, created_at);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    digest TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    email TEXT,
    username TEXT,
    username_lower TEXT,
    mobile_phone TEXT,
    first_name TEXT,
    last_name TEXT,
    data TEXT NOT NULL,
    active BIGINT NOT NULL,
    password_hash TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email ON users(tenant_id, email);
CREATE UNIQUE INDEX users_username ON users(tenant_id, username_lower);

CREATE TABLE login_failures (
    tenant_id TEXT NOT NULL,
    login_id TEXT NOT NULL,
    failures BIGINT NOT NULL,
    window_started_at BIGINT NOT NULL,
    locked_until BIGINT,
    PRIMARY KEY (tenant_id, login_id)
);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    application_id TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    algorithm TEXT NOT NULL,
    -- Set on the key that signs for its algorithm; unique, so servers starting
    -- together cannot each install a different signer.
    signer_for TEXT UNIQUE,
    private_der TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    user_id TEXT,
    ip TEXT,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_tenant ON audit_log(tenant_id, id);
