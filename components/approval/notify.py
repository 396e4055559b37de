"""Webhook notifications of approval events (JSON POST with retries; a dead webhook never blocks a decision)."""

from __future__ import annotations

import logging
import time

from .model import ApprovalRequest

log = logging.getLogger(__name__)


class Notifier:
    """POST ``{"event", "candidate_digest", "attribute", "attribute_version", "state", "report_uri", "request"}``
    to ``url``; a Slack-style ``text`` field is included so chat webhooks show something readable."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff_s: float = 0.5,
        headers: dict | None = None,
    ):
        self.url = url
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.headers = headers or {}
        self.failures = 0

    def send(self, event: str, request: ApprovalRequest) -> bool:
        import httpx

        payload = {
            "event": event,
            "candidate_digest": request.candidate_digest,
            "attribute": request.attribute,
            "attribute_version": request.attribute_version,
            "state": request.state.value,
            "report_uri": request.report_uri,
            "text": f"silverset: {request.key} candidate {request.candidate_digest[:19]} {event}"
            + (f" by {request.decided_by}: {request.reason}" if request.decided_by else ""),
            "request": request.model_dump(mode="json"),
        }
        for attempt in range(self.attempts):
            try:
                response = httpx.post(self.url, json=payload, timeout=self.timeout_s, headers=self.headers)
                if response.status_code < 500:
                    if response.status_code >= 400:
                        log.warning("webhook refused %s: HTTP %s", event, response.status_code)
                        self.failures += 1
                        return False
                    return True
            except httpx.HTTPError as exc:
                log.warning("webhook %s attempt %d failed: %s", event, attempt + 1, exc)
            time.sleep(self.backoff_s * 2**attempt)
        self.failures += 1
        return False
