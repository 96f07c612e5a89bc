# A null condition is neither true nor false.
rule "nothing" {
  when   = null
  action = "deny"
}
