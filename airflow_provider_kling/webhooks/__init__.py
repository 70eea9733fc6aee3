"""fal webhooks into Airflow: verification (sans-I/O), signing keys, the request registry, recording.

- :mod:`.verify`: headers, timestamp window, Ed25519 signature, body parsing (pure).
- :mod:`.jwks`: fal's signing keys, cached with a TTL and a refresh rate limit.
- :mod:`.registry`: what a webhook-mode submit records for the receiver (pure data).
- :mod:`.store`: replay table and asset event, in the metadata database (api-server side).
- :mod:`.config`: the ``[kling]`` settings.

The route itself is :mod:`airflow_provider_kling.plugins.webhooks`.
"""
