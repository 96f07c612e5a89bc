# Partial configuration: the settings come from backend.hcl, written from tofu.tfbackend.tmpl:
#   tofu init -backend-config=backend.hcl
# OpenTofu only (use_lockfile needs OpenTofu >= 1.10; terraform 1.5 does not have it).
terraform {
  backend "s3" {}
}
