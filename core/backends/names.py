"""Native job names a backend lets us choose: ``<prefix>-<job id>-<attempt>``. Deterministic, so a
retried create finds what a lost one made, and an event names the job and attempt it is about."""

from __future__ import annotations


def attempt_name(prefix: str, job_id: str, attempt: int) -> str:
    return f"{prefix}-{job_id}-{attempt}"


def parse_attempt_name(name: str, prefix: str) -> tuple[str, int] | None:
    """``(job_id, attempt)`` of one of our names; None for anyone else's."""
    if not name.startswith(prefix + "-"):
        return None
    job_id, _, attempt = name[len(prefix) + 1:].rpartition("-")
    if not job_id or not attempt.isdigit() or int(attempt) < 1:
        return None
    return job_id, int(attempt)
