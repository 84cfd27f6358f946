output "bucket" {
  description = "Name of the GCS artifact bucket."
  value       = google_storage_bucket.artifacts.name
}

output "database_endpoint" {
  description = "Private IP address of the Cloud SQL PostgreSQL metadata database."
  value       = google_sql_database_instance.metadata.private_ip_address
}

output "cluster_name" {
  description = "Name of the GKE cluster."
  value       = google_container_cluster.qflow.name
}

output "kubeconfig_command" {
  description = "Command that points kubectl at the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.qflow.name} --region ${var.region} --project ${var.project_id}"
}
