rule "no-prod-destroy" {
  when   = command.destroy && workspace == "prod"
  action = "deny"

rule "warn-targets" {
  when   = length(command.targets) > 0
  action = "warn"
}
