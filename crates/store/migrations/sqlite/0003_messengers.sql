-- Messengers and deliveries, SQLite dialect.
CREATE TABLE messengers (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT,
    settings TEXT NOT NULL,
    sealed_secrets TEXT NOT NULL,
    channels TEXT NOT NULL,
    priority BIGINT NOT NULL,
    country_codes TEXT NOT NULL,
    preferred_country_codes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX messengers_tenant ON messengers(tenant_id, created_at);

CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    messenger_id TEXT,
    provider TEXT NOT NULL,
    recipient TEXT NOT NULL,
    channel TEXT NOT NULL,
    purpose TEXT NOT NULL,
    provider_message_id TEXT,
    status TEXT NOT NULL,
    error_code TEXT,
    error_message TEXT,
    attempts BIGINT NOT NULL,
    price TEXT,
    price_unit TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX deliveries_tenant ON deliveries(tenant_id, created_at);
CREATE INDEX deliveries_provider_id ON deliveries(provider, provider_message_id);
