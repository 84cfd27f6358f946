output "bucket" {
  description = "Name of the S3 artifact bucket."
  value       = aws_s3_bucket.artifacts.bucket
}

output "database_endpoint" {
  description = "Host:port of the RDS PostgreSQL metadata database."
  value       = aws_db_instance.metadata.endpoint
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.eks.cluster_name
}

output "kubeconfig_command" {
  description = "Command that points kubectl at the cluster."
  value       = "aws eks update-kubeconfig --region ${var.region} --name ${module.eks.cluster_name}"
}
