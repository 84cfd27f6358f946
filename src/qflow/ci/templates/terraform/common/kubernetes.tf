# Shared by every cloud: the qflow namespace, KubeRay (operator + a RayCluster) and the QFlow
# tracking server. The cloud's files define local.artifacts_url, local.database_url and
# local.service_account_annotations (the identity that may use the bucket).

resource "kubernetes_namespace" "qflow" {
  metadata {
    name = "qflow"
  }
}

resource "kubernetes_service_account" "qflow" {
  metadata {
    name        = "qflow"
    namespace   = kubernetes_namespace.qflow.metadata[0].name
    annotations = local.service_account_annotations
  }
}

resource "random_password" "server_token" {
  length  = 40
  special = false
}

# Ray's token authentication: Ray 2.60 `ray start` enables it only when RAY_AUTH_MODE=token is
# set or a token exists, so every Ray pod gets both (and drivers need the same token).
resource "random_password" "ray_token" {
  length  = 64
  special = false
}

resource "kubernetes_secret" "qflow" {
  metadata {
    name      = "qflow"
    namespace = kubernetes_namespace.qflow.metadata[0].name
  }
  data = {
    QFLOW_STORE        = local.database_url
    QFLOW_ARTIFACTS    = local.artifacts_url
    QFLOW_SERVER_TOKEN = random_password.server_token.result
    RAY_AUTH_TOKEN     = random_password.ray_token.result
  }
}

resource "helm_release" "kuberay_operator" {
  name       = "kuberay-operator"
  repository = "https://ray-project.github.io/kuberay-helm/"
  chart      = "kuberay-operator"
  version    = var.kuberay_version
  namespace  = kubernetes_namespace.qflow.metadata[0].name
}

resource "helm_release" "ray_cluster" {
  name       = "ray"
  repository = "https://ray-project.github.io/kuberay-helm/"
  chart      = "ray-cluster"
  version    = var.kuberay_version
  namespace  = kubernetes_namespace.qflow.metadata[0].name
  depends_on = [helm_release.kuberay_operator, kubernetes_secret.qflow]

  values = [yamlencode({
    # The team image (image.tf): Ray's pods run the project's steps with `qflow run-step`.
    image = {
      repository = local.qflow_image_parts.repository
      tag        = local.qflow_image_parts.tag
    }
    head = {
      serviceAccountName = kubernetes_service_account.qflow.metadata[0].name
      containerEnv = [
        { name = "QFLOW_ARTIFACTS", value = local.artifacts_url },
        { name = "RAY_AUTH_MODE", value = "token" },
        { name = "RAY_AUTH_TOKEN", valueFrom = { secretKeyRef = { name = "qflow", key = "RAY_AUTH_TOKEN" } } },
      ]
    }
    worker = {
      replicas           = var.ray_worker_replicas
      minReplicas        = var.ray_worker_replicas
      maxReplicas        = var.ray_worker_replicas * 2
      serviceAccountName = kubernetes_service_account.qflow.metadata[0].name
      containerEnv = [
        { name = "QFLOW_ARTIFACTS", value = local.artifacts_url },
        { name = "RAY_AUTH_MODE", value = "token" },
        { name = "RAY_AUTH_TOKEN", valueFrom = { secretKeyRef = { name = "qflow", key = "RAY_AUTH_TOKEN" } } },
      ]
    }
  })]
}

resource "kubernetes_deployment" "qflow_server" {
  metadata {
    name      = "qflow-server"
    namespace = kubernetes_namespace.qflow.metadata[0].name
    labels    = { app = "qflow-server" }
  }
  spec {
    replicas = var.server_replicas
    selector {
      match_labels = { app = "qflow-server" }
    }
    template {
      metadata {
        labels = { app = "qflow-server" }
      }
      spec {
        service_account_name = kubernetes_service_account.qflow.metadata[0].name
        container {
          name  = "server"
          image = var.qflow_image
          # $(VAR) is expanded by Kubernetes from the secret below, so the database password
          # never appears in the pod spec.
          args = [
            "qflow", "server",
            "--store", "$(QFLOW_STORE)",
            "--artifacts", "$(QFLOW_ARTIFACTS)",
            "--host", "0.0.0.0",
            "--port", "5000",
            "--allowed-host", var.server_allowed_host,
          ]
          env_from {
            secret_ref {
              name = kubernetes_secret.qflow.metadata[0].name
            }
          }
          port {
            container_port = 5000
          }
          readiness_probe {
            tcp_socket {
              port = 5000
            }
            initial_delay_seconds = 5
          }
          resources {
            requests = { cpu = "250m", memory = "512Mi" }
            limits   = { memory = "2Gi" }
          }
        }
      }
    }
  }
}

resource "kubernetes_service" "qflow_server" {
  metadata {
    name      = "qflow-server"
    namespace = kubernetes_namespace.qflow.metadata[0].name
  }
  spec {
    selector = { app = "qflow-server" }
    port {
      port        = 5000
      target_port = 5000
    }
    type = "ClusterIP"
  }
}
