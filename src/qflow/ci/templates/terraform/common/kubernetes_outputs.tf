output "artifacts_url" {
  description = "QFLOW_ARTIFACTS for drivers and workers: the artifact bucket's URL."
  value       = local.artifacts_url
}

output "database_url" {
  description = "QFLOW_STORE: the metadata database's URL (reachable from inside the cluster's network)."
  value       = local.database_url
  sensitive   = true
}

output "server_url" {
  description = "The QFlow server inside the cluster (kubectl -n qflow port-forward svc/qflow-server 5000)."
  value       = "http://${kubernetes_service.qflow_server.metadata[0].name}.${kubernetes_namespace.qflow.metadata[0].name}.svc.cluster.local:5000"
}

output "server_token" {
  description = "QFLOW_SERVER_TOKEN: the token clients send to the QFlow server."
  value       = random_password.server_token.result
  sensitive   = true
}

output "ray_address" {
  description = "Ray client address of the KubeRay head service, for `qflow run --executor ray`."
  value       = "ray://ray-kuberay-head-svc.${kubernetes_namespace.qflow.metadata[0].name}.svc.cluster.local:10001"
}

output "ray_auth_token" {
  description = "RAY_AUTH_TOKEN for drivers (with RAY_AUTH_MODE=token): the Ray cluster's token."
  value       = random_password.ray_token.result
  sensitive   = true
}
