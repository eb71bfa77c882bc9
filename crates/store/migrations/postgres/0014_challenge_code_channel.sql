-- How a challenge's pending code was sent (sms or voice), so a sign-in that passes it is
-- recorded with the factor it used. Codes sent before this column read as sms.
ALTER TABLE two_factor_challenges ADD COLUMN code_channel TEXT;
