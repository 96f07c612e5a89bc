variable "hold_seconds" {
  description = "Seconds the apply that creates or replaces terraform_data.hold sleeps while holding the state lock."
  type        = number
  default     = 0

  validation {
    condition     = var.hold_seconds >= 0
    error_message = "The hold_seconds value must not be negative."
  }
}

variable "run_id" {
  description = "Any new value replaces terraform_data.hold, so the apply runs the provisioner (and holds the lock) again."
  type        = string
  default     = "initial"
}

variable "db_password" {
  description = "A sensitive value for exercising redaction: -var db_password=... is accepted and never shown."
  type        = string
  default     = ""
  sensitive   = true
}
