-- What the log knows about one lock (who took it, whether it was orphaned,
-- who removed it) is read by its ID when someone force-unlocks it.
CREATE INDEX events_lock ON events(lock_id, seq) WHERE lock_id IS NOT NULL;
