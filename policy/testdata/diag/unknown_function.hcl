rule "prod-prefix" {
  when   = has_prefix(workspace, "prod")
  action = "confirm"
}

rule "stage-prefix" {
  when   = startwith(workspace, "stage")
  action = "warn"
}
