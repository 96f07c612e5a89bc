// Package ci recognises the CI/CD system a command runs in from its
// environment, so that a lock holder reads "bob via github run 1234, job
// deploy" rather than "runner@ip-10-0-0-7".
package ci

import "strings"

// Info describes a pipeline run. The zero Info means no CI.
type Info struct {
	Provider string `json:"provider"` // github, gitlab, jenkins, buildkite, circleci, or "ci" (CI=true only)
	RunID    string `json:"run_id,omitempty"`
	Workflow string `json:"workflow,omitempty"`
	Job      string `json:"job,omitempty"`
	Actor    string `json:"actor,omitempty"`
	Commit   string `json:"commit,omitempty"`
	URL      string `json:"url,omitempty"`
}

// Detect reads the variables each CI system sets.
func Detect(getenv func(string) string) Info {
	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		url := ""
		if s, r, id := getenv("GITHUB_SERVER_URL"), getenv("GITHUB_REPOSITORY"), getenv("GITHUB_RUN_ID"); s != "" && r != "" && id != "" {
			url = s + "/" + r + "/actions/runs/" + id
		}
		return Info{Provider: "github", RunID: getenv("GITHUB_RUN_ID"), Workflow: getenv("GITHUB_WORKFLOW"), Job: getenv("GITHUB_JOB"),
			Actor: getenv("GITHUB_ACTOR"), Commit: getenv("GITHUB_SHA"), URL: url}
	case getenv("GITLAB_CI") == "true":
		return Info{Provider: "gitlab", RunID: getenv("CI_PIPELINE_ID"), Workflow: getenv("CI_PROJECT_PATH"), Job: getenv("CI_JOB_NAME"),
			Actor: getenv("GITLAB_USER_LOGIN"), Commit: getenv("CI_COMMIT_SHA"), URL: first(getenv("CI_JOB_URL"), getenv("CI_PIPELINE_URL"))}
	case getenv("BUILDKITE") == "true":
		return Info{Provider: "buildkite", RunID: getenv("BUILDKITE_BUILD_NUMBER"), Workflow: getenv("BUILDKITE_PIPELINE_SLUG"),
			Job: first(getenv("BUILDKITE_LABEL"), getenv("BUILDKITE_STEP_KEY")), Actor: first(getenv("BUILDKITE_BUILD_CREATOR_EMAIL"), getenv("BUILDKITE_BUILD_CREATOR")),
			Commit: getenv("BUILDKITE_COMMIT"), URL: getenv("BUILDKITE_BUILD_URL")}
	case getenv("CIRCLECI") == "true":
		return Info{Provider: "circleci", RunID: first(getenv("CIRCLE_BUILD_NUM"), getenv("CIRCLE_WORKFLOW_ID")), Workflow: getenv("CIRCLE_WORKFLOW_ID"),
			Job: getenv("CIRCLE_JOB"), Actor: getenv("CIRCLE_USERNAME"), Commit: getenv("CIRCLE_SHA1"), URL: getenv("CIRCLE_BUILD_URL")}
	case getenv("JENKINS_URL") != "" && (getenv("BUILD_NUMBER") != "" || getenv("BUILD_ID") != ""):
		return Info{Provider: "jenkins", RunID: first(getenv("BUILD_NUMBER"), getenv("BUILD_ID")), Workflow: getenv("JOB_NAME"), Job: getenv("STAGE_NAME"),
			Actor: getenv("BUILD_USER_ID"), Commit: getenv("GIT_COMMIT"), URL: getenv("BUILD_URL")}
	}
	switch strings.ToLower(getenv("CI")) {
	case "true", "1", "yes":
		return Info{Provider: "ci"}
	}
	return Info{}
}

// Map is the Info as the audit log's session record keeps it.
func (i Info) Map() map[string]string {
	if i.Provider == "" {
		return nil
	}
	m := map[string]string{"provider": i.Provider}
	for k, v := range map[string]string{"run_id": i.RunID, "workflow": i.Workflow, "job": i.Job, "actor": i.Actor, "commit": i.Commit, "url": i.URL} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
