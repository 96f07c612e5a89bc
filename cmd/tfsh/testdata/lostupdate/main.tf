# Two independent resources in one state, for TestLostUpdate: one change applies to
# terraform_data.a (-target), another to terraform_data.b, from two terminals at once.
#
# Each provisioner stands for the real work of creating the resource: it waits hold_seconds,
# then records the resource in infra/ ("the infrastructure"), so that the test can compare
# what exists with what the state remembers.

terraform {
  required_version = ">= 1.5.0"
}

variable "hold_seconds" {
  type    = number
  default = 0
}

resource "terraform_data" "a" {
  input = "a"
  provisioner "local-exec" {
    command = "sleep ${var.hold_seconds} && mkdir -p infra && touch infra/${self.input}"
  }
}

resource "terraform_data" "b" {
  input = "b"
  provisioner "local-exec" {
    command = "sleep ${var.hold_seconds} && mkdir -p infra && touch infra/${self.input}"
  }
}
