// Package teamlog shares audit logs through one DynamoDB table: it ships
// this log's own events there (conditional puts, never an overwrite),
// creates the table, and pulls everyone's events back into a local log.
// The local SQLite log stays the source of truth; the table is a meeting
// place.
package teamlog
