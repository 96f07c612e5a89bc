-- Crash detection also matches the PID namespace: containers may share a
-- host name and an audit log, and a PID means nothing outside its namespace.
-- Sessions recorded before this have '' and are judged by host alone, as
-- they were.
ALTER TABLE live_sessions ADD COLUMN pidns TEXT NOT NULL DEFAULT '';
DROP INDEX live_sessions_host;
CREATE INDEX live_sessions_host ON live_sessions(host, pidns);
