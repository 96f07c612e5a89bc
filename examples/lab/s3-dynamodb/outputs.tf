output "run_id" {
  description = "The run_id of the last apply that replaced terraform_data.hold."
  value       = terraform_data.hold.output
}
