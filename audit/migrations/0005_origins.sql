-- Events pulled from other tfsh logs (tfsh audit pull): each log has a
-- random ID, created once; a row with origin NULL was written here, any
-- other row by the log origin names, at its own seq origin_seq. A foreign
-- row keeps every column as its writer hashed it, origin_seq standing for
-- seq, so its chain verifies here as it did there.
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('log_id', lower(hex(randomblob(16))));

ALTER TABLE events ADD COLUMN origin TEXT;
ALTER TABLE events ADD COLUMN origin_seq INTEGER;
CREATE INDEX events_origin ON events(origin, origin_seq) WHERE origin IS NOT NULL;
-- The local chain's head, found in one seek however many foreign rows were
-- pulled after it.
CREATE INDEX events_local ON events(seq) WHERE origin IS NULL;

-- How far each shared sink has received this log's own events. Not
-- evidence: the sink's conditional puts make shipping again harmless.
CREATE TABLE ship_cursor (
	sink TEXT PRIMARY KEY,
	seq  INTEGER NOT NULL
) WITHOUT ROWID;
