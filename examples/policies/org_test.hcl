# Tests of org.hcl: tfsh policy test examples/policies
# Times are RFC 3339; the policy judges them in Europe/Berlin.

test "plain apply waits 5m for the lock" {
  command     = "apply"
  expect      = "allow"
  expect_args = ["-lock-timeout=5m"]
}

test "unlocked apply refused by the built-in rule" {
  command     = "apply -lock=false"
  expect      = "deny"
  expect_rule = "no-unlocked-writes"
}

test "unlocked plan only warns" {
  command     = "plan -lock=false"
  expect      = "warn"
  expect_rule = "unlocked-read"
}

test "unlocked state mv refused" {
  command = "state mv -lock=false aws_s3_bucket.a aws_s3_bucket.b"
  expect  = "deny"
}

test "lock disabled through TF_CLI_ARGS is seen" {
  command     = "refresh"
  env         = { TF_CLI_ARGS = "-lock=0" }
  expect      = "deny"
  expect_rule = "no-unlocked-writes"
}

test "force-unlock needs a reason" {
  command     = "force-unlock -force 3f1c-lock-id"
  expect      = "require_reason"
  expect_rule = "force-unlock-needs-ticket"
}

test "force-unlock with a ticket" {
  command = "force-unlock -force 3f1c-lock-id"
  reason  = "CHG-4711 runner died mid-apply"
  expect  = "allow"
}

test "force-unlock with no ticket in the reason" {
  command     = "force-unlock -force 3f1c-lock-id"
  reason      = "it is stuck"
  expect      = "deny"
  expect_rule = "force-unlock-needs-ticket"
}

test "prod apply in working hours" {
  command   = "apply"
  workspace = "prod-eu"
  time      = "2026-03-04T10:30:00+01:00"
  expect    = "allow"
}

test "prod apply in the evening needs an incident" {
  command     = "apply"
  workspace   = "prod-eu"
  time        = "2026-03-04T19:15:00+01:00"
  expect      = "require_reason"
  expect_rule = "prod-changes-in-hours"
}

test "prod apply at the weekend with an incident" {
  command   = "apply"
  workspace = "prod"
  time      = "2026-03-07T11:00:00+01:00"
  reason    = "INC-2024 payment outage"
  expect    = "allow"
}

test "prod apply at night with a change ticket is not enough" {
  command     = "apply"
  workspace   = "prod"
  time        = "2026-03-04T23:00:00Z"
  reason      = "CHG-1 planned"
  expect      = "deny"
  expect_rule = "prod-changes-in-hours"
}

test "hours are Berlin time, not the runner's UTC" {
  # 17:30 UTC is 18:30 in Berlin in winter: outside hours.
  command   = "apply"
  workspace = "prod"
  time      = "2026-03-04T17:30:00Z"
  expect    = "require_reason"
}

test "evening plan on prod is fine" {
  command   = "plan"
  workspace = "prod"
  time      = "2026-03-04T22:00:00+01:00"
  expect    = "allow"
}

test "CI apply gets the default wait" {
  command     = "apply -auto-approve"
  ci          = { provider = "github", actor = "deploy-bot" }
  expect      = "allow"
  expect_args = ["-lock-timeout=5m"]
}

test "CI apply with a short wait refused" {
  command     = "apply -auto-approve -lock-timeout=30s"
  ci          = "gitlab"
  expect      = "deny"
  expect_rule = "ci-waits-for-locks"
}

test "a short wait is fine at a desk" {
  command = "apply -lock-timeout=30s"
  expect  = "allow"
}

test "more than the maximum refused" {
  command     = "apply -lock-timeout=2h"
  expect      = "deny"
  expect_rule = "lock-timeout-max"
}

test "prod destroy is confirmed" {
  command     = "destroy"
  workspace   = "prod"
  expect      = "confirm"
  expect_rule = "confirm-prod-destroy"
}

test "plan -destroy on prod is confirmed too" {
  command   = "plan -destroy"
  workspace = "prod"
  expect    = "confirm"
}

test "targeted apply warns" {
  command     = "apply -target=module.db"
  expect      = "warn"
  expect_rule = "targets-are-exceptional"
}
