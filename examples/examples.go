// Package examples gives tfsh the lab's S3 backend templates, so that tfsh lab prints the very
// settings the lab examples and the tests use rather than a second copy of them.
//
// Everything else under examples/ is data for people and tests; this file only exposes the
// backend templates to the binary.
package examples

import "embed"

// LabBackends holds examples/lab/s3-dynamodb/*.tfbackend.tmpl and
// examples/lab/s3-lockfile/*.tfbackend.tmpl, by those paths minus the leading "examples/".
//
//go:embed lab/s3-dynamodb/*.tfbackend.tmpl lab/s3-lockfile/*.tfbackend.tmpl
var LabBackends embed.FS
