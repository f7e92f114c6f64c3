"""The HTTP side: metrics, health endpoints, the JSON API, the status page, admin actions."""
