# A message must be text.
rule "list-message" {
  when    = command.name == "apply"
  action  = "warn"
  message = ["do not", "apply"]
}
