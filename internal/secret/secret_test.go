package secret

import (
	"reflect"
	"testing"
)

func TestNames(t *testing.T) {
	for _, k := range []string{"secret_key", "access_key", "sas_token", "client_key", "client_certificate_password", "conn_str", "sse_customer_key", "token", "password"} {
		if !KeyName(k) {
			t.Errorf("KeyName(%q) = false", k)
		}
	}
	for _, k := range []string{"bucket", "key", "region", "dynamodb_table", "workspace_key_prefix", "kms_key_id", "path"} {
		if KeyName(k) {
			t.Errorf("KeyName(%q) = true", k)
		}
	}
	for _, k := range []string{"TF_VAR_db", "TF_TOKEN_app_terraform_io", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "ARM_CLIENT_SECRET", "GOOGLE_CREDENTIALS", "VAULT_TOKEN", "PG_CONN_STR", "DATADOG_API_KEY", "TF_HTTP_PASSWORD"} {
		if !EnvName(k) {
			t.Errorf("EnvName(%q) = false", k)
		}
	}
	for _, k := range []string{"PATH", "HOME", "TF_LOG", "AWS_REGION", "AWS_PROFILE", "TF_CLI_ARGS"} {
		if EnvName(k) {
			t.Errorf("EnvName(%q) = true", k)
		}
	}
	got := EnvValues([]string{"TF_VAR_x=abc", "PATH=/bin", "AWS_SECRET_ACCESS_KEY=s3", "EMPTY_TOKEN="})
	if want := []string{"abc", "s3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("EnvValues = %q, want %q", got, want)
	}
}
