-- What the post-login actions decided so far (claims, where a redirected flow
-- resumes, transaction metadata), kept with the sign-in between its requests.
ALTER TABLE sign_ins ADD COLUMN script_state TEXT;
