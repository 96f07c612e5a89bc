// Package secret knows which names carry secrets: environment variables and
// configuration keys (backend settings). It is the one list tfsh keeps, so
// that the audit log, argv redaction and backend discovery agree.
package secret

import "strings"

// fragments in a name that mark it as a secret, matched case-insensitively.
var fragments = []string{
	"secret", "password", "passwd", "token", "credential", "private_key", "client_key",
	"access_key", "api_key", "apikey", "sas", "customer_key", "encryption_key",
	"client_certificate", "conn_str",
}

// KeyName reports whether a configuration key (a backend setting such as
// secret_key, sas_token, client_key) names a secret.
func KeyName(k string) bool {
	k = strings.ToLower(k)
	for _, f := range fragments {
		if strings.Contains(k, f) {
			return true
		}
	}
	return false
}

// EnvName reports whether an environment variable holds a secret by its
// name: TF_VAR_* (tfsh cannot know which variables are sensitive),
// TF_TOKEN_* (registry credentials), and any credential-like name
// (AWS_SECRET_ACCESS_KEY, ARM_CLIENT_SECRET, GOOGLE_CREDENTIALS, VAULT_TOKEN,
// PG_CONN_STR, *_API_KEY, ...).
func EnvName(k string) bool {
	u := strings.ToUpper(k)
	if strings.HasPrefix(u, "TF_VAR_") || strings.HasPrefix(u, "TF_TOKEN_") {
		return true
	}
	return KeyName(k)
}

// EnvValues returns the values of "K=V" entries whose names are secret.
func EnvValues(env []string) []string {
	var out []string
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && v != "" && EnvName(k) {
			out = append(out, v)
		}
	}
	return out
}
