// Package audit owns tfsh's SQLite event log: an append-only, hash-chained
// record of sessions, commands, policy decisions and lock events, the timed
// and compressed output of every command, and everything that reads it back.
//
// Nothing secret is stored: every event and every output chunk passes through
// a Redactor before it is written (see redact.go).
package audit
