rule "no-prod-destroy" {
  when   = command.destroy && workspace == "prod"
  actoin = "deny"
}
