rule "prod-needs-ticket" {
  when           = workspace == "prod"
  action         = "require_reason"
  reason_pattern = "^OPS-[0-9]+"
}
