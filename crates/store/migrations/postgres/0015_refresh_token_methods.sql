-- How the sign-in that bought a refresh token was made (method names, a JSON list), so
-- tokens it refreshes say the same. Tokens from before this column were password
-- sign-ins as far as anyone can tell now.
ALTER TABLE refresh_tokens ADD COLUMN amr TEXT NOT NULL DEFAULT '["password"]';
