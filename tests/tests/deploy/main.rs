//! The deployment files: Kubernetes manifests, compose files, systemd units and the
//! redis.conf / sentinel.conf templates, started or validated with real tools.

mod deploy;
mod deploy_templates;
