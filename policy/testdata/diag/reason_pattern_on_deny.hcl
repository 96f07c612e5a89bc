rule "prod-needs-ticket" {
  when           = workspace == "prod" && command.writes_state
  action         = "deny"
  reason_pattern = "^OPS-[0-9]+"
}
