rule "no-prod-destroy" {
  enabled = false
}
