"""The AWS functions' deployment (DynamoDB in moto, the fake SageMaker) for the leak test."""

from tests.functions.conftest import deployment, fresh_container

__all__ = ["deployment", "fresh_container"]
