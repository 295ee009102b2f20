"""Deliver: weekly reports to Slack and email (or the outbox), exactly once, with a delivery log.

See docs/delivery.md.
"""
