rule "prod" {
  when   = workspace == "prod"
  action = "confirm"
}

rule "prod" {
  when   = workspace == "production"
  action = "deny"
}
