// Package anchor keeps audit anchors where the audit log's writer cannot
// rewrite them: an S3 object written with If-None-Match: *, or a DynamoDB
// item put on condition that it does not exist yet.
package anchor
