"""gitops-bootstrap: onboard a customer onto a GitOps Kubernetes platform."""

__version__ = "0.1.0"
