"""Azure Functions entry points (Python v2 programming model): ``function_app.app`` indexes the
HTTP API, the Azure ML Event Grid trigger and its webhook variant, and the sweeper's timer.
Deployed by ``infra/azure``; each builds its wiring on first invocation through ``core.hosts``."""
