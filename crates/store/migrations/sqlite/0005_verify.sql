-- Verify API and fraud guard, SQLite dialect.
CREATE TABLE verify_accounts (
    sid TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    token_digest TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE verify_services (
    sid TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    account_sid TEXT NOT NULL REFERENCES verify_accounts(sid),
    friendly_name TEXT NOT NULL,
    code_length BIGINT NOT NULL,
    custom_code_enabled BIGINT NOT NULL,
    ttl_seconds BIGINT NOT NULL,
    guard TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX verify_services_account ON verify_services(account_sid, created_at);

CREATE TABLE verifications (
    sid TEXT PRIMARY KEY,
    service_sid TEXT NOT NULL REFERENCES verify_services(sid) ON DELETE CASCADE,
    account_sid TEXT NOT NULL,
    to_number TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    sealed_code TEXT NOT NULL,
    checks BIGINT NOT NULL,
    sends TEXT NOT NULL,
    prefix TEXT NOT NULL,
    country BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX verifications_to ON verifications(service_sid, to_number, created_at);
CREATE INDEX verifications_prefix ON verifications(service_sid, prefix, created_at);

CREATE TABLE verify_sends (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service_sid TEXT NOT NULL,
    number TEXT NOT NULL,
    prefix TEXT NOT NULL,
    ip TEXT,
    at BIGINT NOT NULL
);
CREATE INDEX verify_sends_number ON verify_sends(service_sid, number, at);
CREATE INDEX verify_sends_prefix ON verify_sends(service_sid, prefix, at);
CREATE INDEX verify_sends_ip ON verify_sends(service_sid, ip, at);
CREATE INDEX verify_sends_service ON verify_sends(service_sid, at);

CREATE TABLE fraud_blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service_sid TEXT NOT NULL,
    prefix TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX fraud_blocks_prefix ON fraud_blocks(service_sid, prefix, expires_at);
