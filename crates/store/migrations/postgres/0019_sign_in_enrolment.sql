-- What a sign-in asks of a second factor (its application's policy, a step-up asked
-- for), fixed when it begins, and the factor being set up when it must enrol one: the
-- authenticator key (sealed) and the phone a code went to. Sign-ins open at the upgrade
-- keep FusionAuth's login API rule (whoever has a factor passes it).
ALTER TABLE sign_ins ADD COLUMN mfa_policy TEXT NOT NULL DEFAULT 'whenEnrolled';
ALTER TABLE sign_ins ADD COLUMN step_up BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sign_ins ADD COLUMN enrol_key TEXT;
ALTER TABLE sign_ins ADD COLUMN enrol_phone TEXT;
