rule "prod" {
  when   = workspace == "prod"
  action = "block"
}
