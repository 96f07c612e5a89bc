-- The event log is the source of truth. Rows are never updated or deleted;
-- each row's hash covers the previous row's hash and the row itself.
CREATE TABLE events (
	seq        INTEGER PRIMARY KEY,
	id         TEXT    NOT NULL UNIQUE,
	at         INTEGER NOT NULL,          -- unix nanoseconds, UTC
	session_id TEXT    NOT NULL,
	command_id TEXT,
	kind       TEXT    NOT NULL,
	state_key  TEXT,
	lock_id    TEXT,
	data       TEXT    NOT NULL,          -- compact JSON object, exactly as hashed
	prev_hash  TEXT    NOT NULL,
	hash       TEXT    NOT NULL UNIQUE
);
CREATE INDEX events_session ON events(session_id, seq);
CREATE INDEX events_command ON events(command_id, seq) WHERE command_id IS NOT NULL;
CREATE INDEX events_kind_at ON events(kind, at);
CREATE INDEX events_state_at ON events(state_key, at) WHERE state_key IS NOT NULL;

CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;

-- Command output, redacted, as compressed chunks of timed frames. The
-- command_end event carries the SHA-256 of the frames, so the chain covers it.
CREATE TABLE output_chunks (
	command_id TEXT    NOT NULL,
	seq        INTEGER NOT NULL,
	start_ns   INTEGER NOT NULL,          -- offset of the first frame from command start
	raw_len    INTEGER NOT NULL,          -- length of the uncompressed frames
	frames     BLOB    NOT NULL,          -- DEFLATE of the frame encoding
	PRIMARY KEY (command_id, seq)
) WITHOUT ROWID;

CREATE TRIGGER output_append_only_update BEFORE UPDATE ON output_chunks
BEGIN SELECT RAISE(ABORT, 'audit output is append-only'); END;
CREATE TRIGGER output_append_only_delete BEFORE DELETE ON output_chunks
BEGIN SELECT RAISE(ABORT, 'audit output is append-only'); END;

-- Sessions that have started and not ended: an index for finding crashed
-- sessions without scanning the log, kept in step with session_start and
-- session_end in the same transactions. It is not evidence (the events
-- are); verify does not read it.
CREATE TABLE live_sessions (
	session_id TEXT PRIMARY KEY,
	host       TEXT    NOT NULL,
	pid        INTEGER NOT NULL,
	pid_start  TEXT    NOT NULL,
	started_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX live_sessions_host ON live_sessions(host);
