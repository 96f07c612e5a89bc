# ci has no attribute "name": the suggestion must come from ci's own
# attributes (provider, ...), never "name" from command.
rule "ci-only" {
  when    = command.writes_state && !ci.enabled
  action  = "deny"
  message = "run ${command.name} from CI, not from ${ci.name}"
}
