"""Insights: anomaly detection, their drivers, and (later) weekly reports and summaries.

The modules here are pure logic over pandas objects; the Dagster assets that read the warehouse
and store results wrap them.
"""
