-- Where a browser sign-in goes once its second step is passed: kept with the challenge
-- (the sign-in's state) instead of in the page's hidden fields.
ALTER TABLE two_factor_challenges ADD COLUMN return_to TEXT;
