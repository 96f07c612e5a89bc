# A team's hooks: copy this file to .tfsh/hooks.hcl and scripts/ to the root of
# the project (argv paths with a slash are found from the project root).
# Reference: docs/hooks.md. tfsh refuses to run commands while this file is
# invalid, so a team's checks are never skipped silently.

# Applies and destroys must come from a branch that names a ticket.
hook "ticket-branch" {
  on         = ["before_command"]
  commands   = ["apply", "destroy", "import", "state"]
  on_failure = "refuse"
  exec {
    argv    = ["./scripts/check-ticket-branch"]
    timeout = "5s"
  }
}

# Tell the on-call channel when a lock is contended or left behind, and
# when the policy refuses something. The receiver checks the signature with
# the secret in TFSH_HOOK_SECRET (docs/hooks.md, "Verifying a delivery").
hook "notify-oncall" {
  on = ["lock_contention", "lock_orphaned", "policy_denied", "force_unlock"]
  webhook {
    url        = "https://hooks.example.test/tfsh"
    secret_env = "TFSH_HOOK_SECRET"
    timeout    = "10s"
    retries    = 3
  }
}

# Keep a local log of every command's end; never stops anything.
hook "local-log" {
  on = ["after_command"]
  exec {
    argv    = ["./scripts/append-log", ".tfsh/commands.log"]
    timeout = "2s"
  }
}
