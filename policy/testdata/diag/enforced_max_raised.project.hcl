settings {
  lock_timeout_max = "1h"
}
