# A literal pattern is compiled when the policy loads, though workspace is
# only known when a command runs.
rule "prod-ish" {
  when   = matches(workspace, "^prod[")
  action = "confirm"
}
