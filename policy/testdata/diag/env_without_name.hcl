rule "env-gate" {
  when   = env[command.name] == "off"
  action = "deny"
}
