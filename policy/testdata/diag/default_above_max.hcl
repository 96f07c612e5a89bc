settings {
  lock_timeout_default = "10m"
  lock_timeout_max     = "2m"
}
