package lab

import (
	"os"
	"strings"
)

// Fake credentials the lab's servers accept (neither checks signatures).
const (
	AccessKeyID     = "AKIDTFSHLAB"
	SecretAccessKey = "tfsh-lab-secret"
	Region          = "us-east-1"
)

// Env returns the environment for running terraform or tofu against the lab, built from base
// (usually os.Environ()) followed by extra ("KEY=value" entries, which win):
//
//   - set CHECKPOINT_DISABLE=1, TF_IN_AUTOMATION=1, TF_INPUT=0, the fake AWS credentials,
//     AWS_REGION=us-east-1 and AWS_EC2_METADATA_DISABLED=true;
//   - drop TF_CLI_CONFIG_FILE when it names a file that does not exist (terraform then warns on
//     every command), TF_LOG*, TF_CLI_ARGS*, TF_WORKSPACE and TF_DATA_DIR, and the AWS settings
//     that could send the backend elsewhere or to other credentials (AWS_PROFILE,
//     AWS_DEFAULT_PROFILE, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL*, AWS_DEFAULT_REGION).
//
// Later entries of the same name replace earlier ones; the order of first appearance is kept.
func Env(base []string, extra ...string) []string {
	var keys []string
	vals := map[string]string{}
	set := func(kv string) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return
		}
		if _, seen := vals[k]; !seen {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		if dropFromLabEnv(k, v) {
			continue
		}
		set(kv)
	}
	for _, kv := range []string{
		"CHECKPOINT_DISABLE=1",
		"TF_IN_AUTOMATION=1",
		"TF_INPUT=0",
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
		"AWS_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true",
	} {
		set(kv)
	}
	for _, kv := range extra {
		set(kv)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+vals[k])
	}
	return out
}

func dropFromLabEnv(k, v string) bool {
	switch {
	case k == "TF_CLI_CONFIG_FILE":
		_, err := os.Stat(v)
		return v == "" || err != nil
	case strings.HasPrefix(k, "TF_LOG"), strings.HasPrefix(k, "TF_CLI_ARGS"),
		k == "TF_WORKSPACE", k == "TF_DATA_DIR":
		return true
	case k == "AWS_PROFILE", k == "AWS_DEFAULT_PROFILE", k == "AWS_SESSION_TOKEN",
		k == "AWS_DEFAULT_REGION", strings.HasPrefix(k, "AWS_ENDPOINT_URL"):
		return true
	}
	return false
}
