variable "project_id" {
  description = "Google Cloud project to create the stack in."
  type        = string
}

variable "name" {
  description = "Prefix of every resource's name (lower case, digits and dashes)."
  type        = string
  default     = "qflow"
}

variable "region" {
  description = "Region of the stack, e.g. europe-west4."
  type        = string
  default     = "europe-west4"
}

variable "artifact_bucket" {
  description = "Name of the GCS bucket for artifacts (globally unique). Empty: <name>-artifacts-<project id>."
  type        = string
  default     = ""
}

variable "node_machine_type" {
  description = "Machine type of the GKE worker nodes (Ray workers and the QFlow server)."
  type        = string
  default     = "e2-standard-4"
}

variable "node_count" {
  description = "Number of worker nodes per zone of the node pool."
  type        = number
  default     = 1
}

variable "db_tier" {
  description = "Cloud SQL machine tier of the metadata database."
  type        = string
  default     = "db-custom-2-7680"
}

variable "db_storage_gb" {
  description = "Disk size of the metadata database, in GB."
  type        = number
  default     = 50
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

variable "api_allowed_cidrs" {
  description = "Networks (CIDR) that may reach the Kubernetes API from the internet, e.g. [\"203.0.113.0/24\"] for the office or CI runners. Empty: the API has no public access (Terraform must then run from inside the network)."
  type        = list(string)

  validation {
    condition     = alltrue([for cidr in var.api_allowed_cidrs : can(cidrnetmask(cidr))])
    error_message = "Each entry of api_allowed_cidrs must be an IPv4 CIDR block such as 203.0.113.0/24."
  }
  validation {
    condition     = !contains(var.api_allowed_cidrs, "0.0.0.0/0")
    error_message = "api_allowed_cidrs must not open the Kubernetes API to the whole internet (0.0.0.0/0); name the networks that need it."
  }
}
