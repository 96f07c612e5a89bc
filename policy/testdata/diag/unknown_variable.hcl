rule "prod-confirm" {
  when   = worksapce == "prod"
  action = "confirm"
}
