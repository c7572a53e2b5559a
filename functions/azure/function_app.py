"""The Azure function app: the HTTP API, Azure ML run events (Event Grid trigger and webhook) and
the sweeper's timer. Each function hands its trigger to core and renders what comes back."""

from __future__ import annotations

import azure.functions as func

from core import azure_host, eventgrid, hosts

SWEEP_SCHEDULE = "0 */5 * * * *"  # NCRONTAB (with seconds): every 5 minutes
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)  # Train checks API keys itself


@app.function_name("azureml_events")
@app.event_grid_trigger(arg_name="event")
def azureml_events(event: func.EventGridEvent) -> None:
    eventgrid.handle(eventgrid.from_trigger(event))


@app.function_name("azureml_events_webhook")
@app.route(route="eventgrid/azureml", methods=["POST", "OPTIONS"], auth_level=func.AuthLevel.FUNCTION)
def azureml_events_webhook(req: func.HttpRequest) -> func.HttpResponse:
    return _response(azure_host.webhook(req.method, dict(req.headers), req.get_body()))


@app.function_name("sweeper")
@app.timer_trigger(arg_name="timer", schedule=SWEEP_SCHEDULE, run_on_startup=False, use_monitor=True)
def sweeper(timer: func.TimerRequest) -> None:
    hosts.sweep(hosts.wiring().service, "timer-past-due" if timer.past_due else "timer")


@app.function_name("http_api")
@app.route(route="{*path}", methods=METHODS, auth_level=func.AuthLevel.ANONYMOUS)
def http_api(req: func.HttpRequest) -> func.HttpResponse:
    return _response(azure_host.api(req.method, req.url, dict(req.headers), req.get_body()))


def _response(reply: azure_host.Reply) -> func.HttpResponse:
    return func.HttpResponse(reply.body, status_code=reply.status, headers=reply.headers, mimetype=reply.mimetype)
