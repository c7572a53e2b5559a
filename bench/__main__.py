"""Run every benchmark in this folder and print its ratios."""

from __future__ import annotations

from bench import cold_start_aws, cold_start_azure, cold_start_gcp, service_overhead, status_updates

if __name__ == "__main__":
    for module in (service_overhead, status_updates, cold_start_aws, cold_start_gcp, cold_start_azure):
        module.main()
