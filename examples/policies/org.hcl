# The organisation's lock policy, as a security team ships it.
#
# Install it as /etc/tfsh/policy.hcl on every machine that runs terraform
# (laptops, bastions, CI runners), or point TFSH_ORG_POLICY at it where
# /etc cannot be written. Project and user policies layer on top: what is
# enforced here they cannot loosen, what is not is a default they may change.
# Check it with `tfsh policy check` and run its tests with `tfsh policy test`
# (org_test.hcl, beside it).

settings {
  # Wait for a busy lock instead of failing at once (terraform's default
  # is 0s), but never hold a pipeline for more than half an hour.
  lock_timeout_default  = "5m"
  lock_timeout_max      = "30m"
  lock_timeout_over_max = "refuse"

  # No audit log, no command.
  audit_required = true

  # Working hours below are Berlin time, wherever the runner is.
  timezone = "Europe/Berlin"

  enforced = true
}

# The built-in rule that refuses -lock=false on anything that writes state:
# no project may turn it off.
rule "no-unlocked-writes" {
  enforced = true
}

# Reading without the lock is tolerated for plan only; everything else
# takes the lock. With the built-in rule enforced this adds a statement of
# intent that also covers any command a future terraform adds.
rule "unlocked-only-for-plan" {
  description = "-lock=false is allowed for plan, and nothing else"
  when        = !command.lock && command.name != "plan"
  action      = "deny"
  message     = "${command.name} may not run with the state lock off; only plan may (drop -lock=false)"
  enforced    = true
}

# Removing someone else's lock can corrupt state: it needs a ticket.
rule "force-unlock-needs-ticket" {
  description    = "force-unlock needs a reason that names an incident or change ticket"
  when           = command.name == "force-unlock"
  action         = "require_reason"
  reason_pattern = "\\b(INC|CHG)-[0-9]+\\b"
  message        = "force-unlock removes a lock another run may still hold: give the incident or change ticket (INC-123, CHG-456) in the reason"
  enforced       = true
}

# Production changes happen in working hours, unless there is an incident.
rule "prod-changes-in-hours" {
  description    = "changes to prod state outside Mon-Fri 09:00-18:00 (Berlin) need an incident number"
  when           = command.writes_state && startswith(workspace, "prod") && (time.weekend || time.hour < 9 || time.hour >= 18)
  action         = "require_reason"
  reason_pattern = "\\bINC-[0-9]+\\b"
  message        = "${command.name} on ${workspace} at ${time.weekday} ${time.hour}h is outside working hours: name the incident (INC-123) in the reason"
  enforced       = true
}

# Pipelines wait for locks: a job that fails on a transient lock leaves a
# half-finished rollout behind.
rule "ci-waits-for-locks" {
  description = "in CI, a locking command waits at least 5m for the lock"
  when        = ci.enabled && command.locks && command.lock && command.lock_timeout_seconds < duration("5m")
  action      = "deny"
  message     = "in CI, ${command.name} must wait at least 5m for the state lock (it would wait ${command.lock_timeout}): use -lock-timeout=5m or more"
  enforced    = true
}

# Destroying production is possible, but never by accident.
rule "confirm-prod-destroy" {
  description = "destroying anything in a prod workspace is confirmed at a terminal"
  when        = command.destroy && startswith(workspace, "prod")
  action      = "confirm"
  message     = "this destroys resources in ${workspace}"
  enforced    = true
}

# -target is for emergencies: it skips dependencies. Not enforced: a project
# may make this stricter (deny) or drop it.
rule "targets-are-exceptional" {
  when    = length(command.targets) > 0 && command.name != "plan"
  action  = "warn"
  message = "-target applies part of the configuration and skips what depends on it; follow up with a full apply"
}
