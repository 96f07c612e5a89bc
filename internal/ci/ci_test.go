package ci

import "testing"

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Info
	}{
		{"none", map[string]string{"HOME": "/root"}, Info{}},
		{"generic", map[string]string{"CI": "true"}, Info{Provider: "ci"}},
		{"github", map[string]string{"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "1234", "GITHUB_WORKFLOW": "deploy", "GITHUB_JOB": "apply",
			"GITHUB_ACTOR": "bob", "GITHUB_SHA": "abc", "GITHUB_SERVER_URL": "https://git.example.test", "GITHUB_REPOSITORY": "org/infra"},
			Info{Provider: "github", RunID: "1234", Workflow: "deploy", Job: "apply", Actor: "bob", Commit: "abc", URL: "https://git.example.test/org/infra/actions/runs/1234"}},
		{"gitlab", map[string]string{"GITLAB_CI": "true", "CI_PIPELINE_ID": "77", "CI_JOB_NAME": "plan", "GITLAB_USER_LOGIN": "ann", "CI_JOB_URL": "u"},
			Info{Provider: "gitlab", RunID: "77", Job: "plan", Actor: "ann", URL: "u"}},
		{"jenkins", map[string]string{"JENKINS_URL": "j", "BUILD_NUMBER": "9", "JOB_NAME": "infra/main", "BUILD_URL": "b"},
			Info{Provider: "jenkins", RunID: "9", Workflow: "infra/main", URL: "b"}},
		{"buildkite", map[string]string{"BUILDKITE": "true", "BUILDKITE_BUILD_NUMBER": "3", "BUILDKITE_PIPELINE_SLUG": "infra", "BUILDKITE_BUILD_CREATOR": "Cy"},
			Info{Provider: "buildkite", RunID: "3", Workflow: "infra", Actor: "Cy"}},
		{"circleci", map[string]string{"CIRCLECI": "true", "CIRCLE_BUILD_NUM": "5", "CIRCLE_JOB": "apply", "CIRCLE_USERNAME": "dee"},
			Info{Provider: "circleci", RunID: "5", Job: "apply", Actor: "dee"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Detect(func(k string) string { return tt.env[k] }); got != tt.want {
				t.Fatalf("Detect = %+v, want %+v", got, tt.want)
			}
		})
	}
	if m := (Info{}).Map(); m != nil {
		t.Fatalf("Map of no CI = %v, want nil", m)
	}
}
