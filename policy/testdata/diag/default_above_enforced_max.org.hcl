settings {
  lock_timeout_max = "10m"
  enforced         = true
}
