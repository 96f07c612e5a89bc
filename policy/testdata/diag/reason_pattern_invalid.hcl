rule "prod-needs-ticket" {
  when           = workspace == "prod" && command.writes_state
  action         = "require_reason"
  reason_pattern = "^OPS-[0-9+$"
}
