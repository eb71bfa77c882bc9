-- Who acted (an API key, or a user), beside whom it concerned (`user_id`).
ALTER TABLE audit_log ADD COLUMN actor TEXT;
