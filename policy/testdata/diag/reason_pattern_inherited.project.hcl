# The rule keeps the organisation's reason_pattern, which means nothing for
# a deny: the error points at this block's action.
rule "prod-needs-ticket" {
  action = "deny"
}
