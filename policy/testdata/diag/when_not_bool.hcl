rule "prod" {
  when   = workspace
  action = "confirm"
}
