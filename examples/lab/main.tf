# The tfsh lab workload: one built-in terraform_data resource, no providers, so it runs offline
# with terraform >= 1.5 and OpenTofu >= 1.10. The same file is in every lab example (only the
# backend differs), so resource addresses are the same everywhere.
#
# An apply that changes run_id replaces the resource, which re-runs the local-exec provisioner
# (provisioners run on create only): `sleep hold_seconds` keeps the state locked that long.

terraform {
  required_version = ">= 1.5.0"
}

resource "terraform_data" "hold" {
  input            = var.run_id
  triggers_replace = [var.run_id, var.hold_seconds]

  provisioner "local-exec" {
    command = "sleep ${var.hold_seconds}"
    # Harmless use of the sensitive variable: the sleep ignores it, and it is not stored in state.
    environment = {
      TFSH_LAB_DB_PASSWORD = var.db_password
    }
  }
}
