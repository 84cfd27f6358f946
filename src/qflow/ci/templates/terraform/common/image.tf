# The team's image (built from ./Dockerfile): QFlow, the project and its dependencies. The QFlow
# server and the Ray head and workers all run it; Ray's pods need the project to run
# `qflow run-step`, so a plain rayproject/ray image cannot serve.

variable "qflow_image" {
  description = "The project's image built from ./Dockerfile (QFlow and the project inside): REPOSITORY[:TAG] or REPOSITORY@sha256:DIGEST; a registry may have a port (registry:5000/team/project:1.0)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]+([._:/-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})?$", var.qflow_image))
    error_message = "qflow_image must look like registry.example.com:5000/team/project:1.0 or ghcr.io/team/project@sha256:<64 hex digits>."
  }
}

locals {
  # REPOSITORY@sha256:DIGEST, else REPOSITORY:TAG (the tag is what follows the last ':' after
  # the last '/', so a registry port is part of the repository), else REPOSITORY (latest).
  image_digest = regexall("^(.+)@(sha256:[0-9a-f]{64})$", var.qflow_image)
  image_tagged = regexall("^(.+/)?([^/:]+)(:([^/:]+))?$", var.qflow_image)

  # The ray-cluster chart writes "<repository>:<tag>"; for a digest the repository ends in
  # "@sha256" and the tag is the hex digest, which writes REPOSITORY@sha256:DIGEST back.
  qflow_image_parts = length(local.image_digest) > 0 ? {
    repository = "${local.image_digest[0][0]}@sha256"
    tag        = trimprefix(local.image_digest[0][1], "sha256:")
    } : {
    repository = join("", compact([local.image_tagged[0][0], local.image_tagged[0][1]]))
    tag        = local.image_tagged[0][3] == null ? "latest" : local.image_tagged[0][3]
  }
}
