// Package hooks runs the before and after hooks around each command: local
// executables and signed webhooks, with timeouts and failure modes.
//
// It is empty until the policy issue gives hooks their configuration.
package hooks
