rules "no-prod-destroy" {
  when   = command.destroy && workspace == "prod"
  action = "deny"
}
