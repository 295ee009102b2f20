"""The simulated SaaS business in Stripe: its catalog, each customer's life, the Stripe JSON, and the simulator."""
