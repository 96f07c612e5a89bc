# Partial configuration: the settings come from backend.hcl, written from
# terraform.tfbackend.tmpl (terraform 1.5) or tofu.tfbackend.tmpl (OpenTofu 1.10):
#   terraform init -backend-config=backend.hcl
terraform {
  backend "s3" {}
}
