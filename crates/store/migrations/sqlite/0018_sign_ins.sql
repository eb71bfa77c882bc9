-- A sign-in kept between its steps (until now only the two-factor challenge was):
-- its tenant, the methods passed so far, its stage, the token that resumes it after a
-- redirect, and the request it started with. Nobody is known before the first factor,
-- so the user may be empty. Challenges open at the upgrade carry on as sign-ins
-- waiting for their second factor.
CREATE TABLE sign_ins (
    digest TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    application_id TEXT NOT NULL,
    user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
    methods TEXT NOT NULL,
    stage TEXT NOT NULL,
    stage_detail TEXT,
    resume_digest TEXT UNIQUE,
    return_to TEXT,
    ip TEXT,
    user_agent TEXT,
    browser_digest TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    spent BIGINT NOT NULL,
    code_method_id TEXT,
    code_channel TEXT,
    code_hash TEXT,
    code_expires_at BIGINT
);
INSERT INTO sign_ins (digest, tenant_id, application_id, user_id, methods, stage, return_to, created_at,
                      expires_at, failures, spent, code_method_id, code_channel, code_hash, code_expires_at)
SELECT c.digest, u.tenant_id, c.application_id, c.user_id, '["pwd"]', 'need_factor', c.return_to, c.created_at,
       c.expires_at, c.failures, c.spent, c.code_method_id, c.code_channel, c.code_hash, c.code_expires_at
FROM two_factor_challenges c JOIN users u ON u.id = c.user_id;
DROP TABLE two_factor_challenges;
CREATE INDEX sign_ins_expiry ON sign_ins(expires_at);
