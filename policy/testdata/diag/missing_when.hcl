rule "no-prod-apply" {
  action  = "deny"
  message = "no applies to prod"
}
