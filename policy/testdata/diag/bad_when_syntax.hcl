rule "apply-only" {
  when   = command.name ==
  action = "warn"
}
