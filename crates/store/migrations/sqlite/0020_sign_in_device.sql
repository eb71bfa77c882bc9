-- The browser a sign-in came from, as the digest of its long-lived device cookie: the
-- signal a new-device check compares with the user's earlier sign-ins.
ALTER TABLE sign_ins ADD COLUMN device_digest TEXT;
