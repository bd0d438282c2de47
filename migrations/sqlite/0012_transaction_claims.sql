-- The replica processing a pushed transaction holds it until then; one left unprocessed
-- (a crash midway) is taken again once its claim has run out.
ALTER TABLE appservice_transactions ADD COLUMN claimed_until BIGINT;
