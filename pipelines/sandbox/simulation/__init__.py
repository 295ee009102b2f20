"""The simulated businesses: shared seeded draws and sizes, generated tenants, the shop and SaaS simulators, and their runner."""
