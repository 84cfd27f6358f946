variable "name" {
  description = "Prefix of every resource's name (lower case, digits and dashes)."
  type        = string
  default     = "qflow"
}

variable "region" {
  description = "AWS region of the stack, e.g. eu-west-1."
  type        = string
  default     = "eu-west-1"
}

variable "artifact_bucket" {
  description = "Name of the S3 bucket for artifacts (globally unique). Empty: <name>-artifacts-<account id>."
  type        = string
  default     = ""
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.30"
}

variable "node_instance_type" {
  description = "EC2 instance type of the worker nodes (Ray workers and the QFlow server)."
  type        = string
  default     = "m6i.xlarge"
}

variable "node_count" {
  description = "Number of worker nodes (min = desired; the max is twice this)."
  type        = number
  default     = 2
}

variable "db_instance_class" {
  description = "RDS instance class of the metadata database."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_storage_gb" {
  description = "Allocated storage of the metadata database, in GB."
  type        = number
  default     = 50
}

variable "qflow_image" {
  description = "Container image with qflow-framework[server,postgres,ray] installed (also used by Ray)."
  type        = string
  default     = "ghcr.io/your-org/qflow:latest"
}

variable "ray_image" {
  description = "Image of the Ray head and workers; must have the same Ray and Python as the driver."
  type        = string
  default     = "rayproject/ray:2.60.0-py311"
}

variable "kuberay_version" {
  description = "Version of the KubeRay operator and ray-cluster Helm charts."
  type        = string
  default     = "1.3.0"
}

variable "ray_worker_replicas" {
  description = "Number of Ray worker pods."
  type        = number
  default     = 2
}

variable "server_replicas" {
  description = "Replicas of the QFlow tracking server."
  type        = number
  default     = 1
}

variable "server_allowed_host" {
  description = "Host name clients use to reach the QFlow server (checked against DNS rebinding)."
  type        = string
  default     = "qflow-server.qflow.svc.cluster.local"
}
