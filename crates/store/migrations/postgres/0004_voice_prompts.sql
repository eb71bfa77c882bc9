-- What a voice call speaks, until the provider fetches it. PostgreSQL dialect.
CREATE TABLE voice_prompts (
    digest TEXT PRIMARY KEY,
    sealed_text TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
