"""Outbound adapters to the operator/aggregator API and to the SMS gateway, behind ports."""
