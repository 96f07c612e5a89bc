rule "apply-warn" {
  when   = command.nme == "apply"
  action = "warn"
}
