settings {
  timezone = "Europe/Paaris"
}
