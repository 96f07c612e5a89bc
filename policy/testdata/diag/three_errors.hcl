settings {
  lock_timeout_over_max = "ignore"
}

rule "prod" {
  when   = worksapce == "prod"
  action = "confirm"
}

rule "nights" {
  when   = time.hour >= 20
  action = "block"
}
