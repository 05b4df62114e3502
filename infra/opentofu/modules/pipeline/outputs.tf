output "release_name" {
  description = "Name of the Helm release of the pipeline chart."
  value       = helm_release.pipeline.name
}

output "github_webhook_secret" {
  description = "Secret to paste into the GitHub webhook form."
  value       = local.github_webhook_secret
  sensitive   = true
}

output "data_webhook_token" {
  description = "Bearer token for POST /data-updated."
  value       = local.data_webhook_token
  sensitive   = true
}
