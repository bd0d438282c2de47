-- Which credentials secret the account's password was last derived from (a fingerprint, never
-- the password): a rotated secret re-derives and re-sets the password on next use.
ALTER TABLE matrix_accounts ADD COLUMN password_key TEXT;
-- Deactivated app users keep their row so they are not provisioned again by accident.
ALTER TABLE matrix_accounts ADD COLUMN deactivated_at BIGINT;
