// Package auditgen writes realistic audit logs for tests and benchmarks: a
// team of people and CI runners planning and applying against a set of
// states over weeks, with the contention, orphaned locks, force-unlocks,
// holds and crashes that a real log holds, all through the audit package's
// own API, so that rows, chains and hashes are exactly what tfsh writes.
package auditgen
