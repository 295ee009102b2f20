"""Ingest: dlt sources for Shopify and Stripe, loaded per workspace into the warehouse's raw schemas."""
