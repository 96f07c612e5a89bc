# command.name says "workspace delete" for terraform env delete too: a rule
# written with the old name would never match.
rule "keep-prod" {
  when   = command.name == "env delete" && workspace == "prod"
  action = "deny"
}

# Other strings that start with "env" are not command names.
rule "env-workspaces" {
  when   = startswith(workspace, "env ") || contains(["env delete"], backend)
  action = "warn"
}

rule "in-a-list" {
  when   = contains(["apply", "env select"], command.name)
  action = "warn"
}
