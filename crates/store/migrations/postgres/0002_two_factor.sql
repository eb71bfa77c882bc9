-- Second factors, PostgreSQL dialect.
CREATE TABLE two_factor_methods (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    phone TEXT,
    secret_sealed TEXT,
    algorithm TEXT,
    digits BIGINT,
    period BIGINT,
    last_step BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, id)
);

CREATE TABLE two_factor_challenges (
    digest TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    application_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    spent BIGINT NOT NULL,
    code_method_id TEXT,
    code_hash TEXT,
    code_expires_at BIGINT
);
CREATE INDEX two_factor_challenges_expiry ON two_factor_challenges(expires_at);

CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, hash)
);

CREATE TABLE user_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    PRIMARY KEY (user_id, purpose)
);

CREATE TABLE message_sends (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX message_sends_user ON message_sends(user_id, at);

CREATE TABLE trust_tokens (
    digest TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX trust_tokens_user ON trust_tokens(user_id);
