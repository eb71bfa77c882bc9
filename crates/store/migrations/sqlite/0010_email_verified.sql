-- Whether the user's email address is known to be theirs (FusionAuth's `verified`):
-- set when an administrator creates the user with `skipVerification`, cleared when the
-- address changes; what ID tokens say as `email_verified`.
ALTER TABLE users ADD COLUMN email_verified BIGINT NOT NULL DEFAULT 0;
