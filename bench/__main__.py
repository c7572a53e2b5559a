"""Run every benchmark in this folder and print its ratios."""

from __future__ import annotations

from bench import (
    cold_start_aws,
    cold_start_azure,
    cold_start_gcp,
    events_volume,
    http_throughput,
    registry_replication,
    service_overhead,
    status_updates,
    sweeper_reads,
)

if __name__ == "__main__":
    for module in (
        service_overhead, status_updates, events_volume, sweeper_reads, http_throughput,
        cold_start_aws, cold_start_gcp, cold_start_azure, registry_replication,
    ):
        module.main()
