# The project's default is what breaks the organisation's maximum, so the
# error belongs here, not on the organisation's file.
settings {
  lock_timeout_default = "1h"
}
