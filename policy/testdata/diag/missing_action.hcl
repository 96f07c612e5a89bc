rule "prod" {
  when    = workspace == "prod"
  message = "careful: ${workspace}"
}
