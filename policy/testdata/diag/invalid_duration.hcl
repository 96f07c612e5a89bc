settings {
  lock_timeout_default = "5 minutes"
}
