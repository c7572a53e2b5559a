"""AWS Lambda entry points: ``http.handler`` (API Gateway), ``sagemaker_events.handler``
(EventBridge SageMaker state changes) and ``sweeper.handler`` (the schedule). Deployed by
``serverless.yml``; each builds its wiring on first invocation through ``core.hosts``."""
