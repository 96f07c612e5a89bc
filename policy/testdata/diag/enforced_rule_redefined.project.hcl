rule "no-prod-destroy" {
  when   = false
  action = "warn"
}
