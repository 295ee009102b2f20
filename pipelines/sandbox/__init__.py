"""The sandbox: a seeded simulated business served through the real Shopify, Stripe and ECB APIs (docs/sandbox.md)."""
