rule "no-prod-destroy" {
  when     = command.destroy && workspace == "prod"
  action   = "deny"
  enforced = true
}
