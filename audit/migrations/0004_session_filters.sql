-- Finding sessions (tfsh audit sessions --user, --host, --state, --command,
-- --kind, --since, --until) without reading the log. Every index ends in
-- session_id, a ULID that begins with the session's start time: each
-- filter yields its sessions newest first, and a time window is a range of
-- it. Indexes only: the events are untouched, and verify does not read them.

-- Events of a kind, by session: --kind, every session (session_start), a
-- session's end and commands.
CREATE INDEX events_kind_session ON events(kind, session_id);
-- Sessions by who and where.
CREATE INDEX events_session_user ON events(json_extract(data, '$.user'), session_id) WHERE kind = 'session_start';
CREATE INDEX events_session_host ON events(json_extract(data, '$.host'), session_id) WHERE kind = 'session_start';
-- Commands by state, and by what was typed (the distinct argv are read from
-- this index one seek each, for --command's regular expression).
CREATE INDEX events_command_state ON events(state_key, session_id) WHERE kind = 'command_start';
CREATE INDEX events_command_typed ON events(json_extract(data, '$.typed'), session_id) WHERE kind = 'command_start';
