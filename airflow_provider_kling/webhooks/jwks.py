"""fal's webhook signing keys, fetched from the JWKS URL and cached.

The cache is what stands between a flood of forged deliveries and fal's JWKS endpoint: keys are
fetched when the cache is empty or older than the TTL, and once more when a signature matches no
cached key (fal rotated its key) -- but never more often than ``min_refresh_interval``, whatever
the cause, and one fetch at a time. So a forged delivery costs one signature check, not one fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from airflow_provider_kling.webhooks.verify import WebhookRefused, public_keys, signature_valid

log = logging.getLogger(__name__)


class JwksCache:
    """Ed25519 keys from one JWKS URL, shared by every delivery an api-server process receives.

    :param url: the JWKS URL.
    :param ttl: seconds fetched keys are used before the next fetch.
    :param min_refresh_interval: least seconds between two fetches (TTL expiry excepted).
    :param timeout: seconds for one fetch.
    :param clock: monotonic clock (tests pass a fake one).
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 3600.0,
        min_refresh_interval: float = 60.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.ttl = ttl
        self.min_refresh_interval = min_refresh_interval
        self.timeout = timeout
        self._clock = clock
        self._keys: list[bytes] = []
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch attempt, successful or not
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def verify(self, signature: bytes, message: bytes) -> None:
        """Return when a fal key verifies the signature; refuse (401, or 503 without keys) otherwise."""
        keys = await self._keys_for_use()
        if keys and signature_valid(keys, signature, message):
            return
        # No cached key matches: fal may have rotated. Refetch once, if not fetched too recently.
        refreshed = await self._refresh()
        if refreshed is not None and refreshed != keys and signature_valid(refreshed, signature, message):
            return
        if not self._keys:
            raise WebhookRefused(503, f"no signing keys: the JWKS at {self.url} could not be fetched")
        raise WebhookRefused(401, "signature does not verify with any of fal's keys")

    async def _keys_for_use(self) -> list[bytes]:
        now = self._clock()
        if self._fetched_at is not None and now - self._fetched_at < self.ttl:
            return self._keys
        refreshed = await self._refresh()
        return refreshed if refreshed is not None else self._keys  # stale keys beat none

    async def _refresh(self) -> list[bytes] | None:
        """Fetch the JWKS unless a fetch was attempted recently; None when none happened or it failed."""
        async with self._lock:
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self.min_refresh_interval:
                return None  # also after a failed fetch: an outage must not become a fetch per request
            self._attempted_at = now
            self.fetches += 1
            try:
                async with httpx.AsyncClient(timeout=self.timeout) as client:
                    response = await client.get(self.url, headers={"Accept": "application/json"})
                response.raise_for_status()
                keys = public_keys(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("fal webhook keys: fetching %s failed (%s)", self.url, type(exc).__name__)
                return None
            if not keys:
                log.warning("fal webhook keys: %s has no Ed25519 keys", self.url)
                return None
            self._keys, self._fetched_at = keys, self._clock()
            log.info("fal webhook keys: %d key(s) fetched from %s", len(keys), self.url)
            return keys
