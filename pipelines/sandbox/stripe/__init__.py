"""The fake Stripe REST API and its API-version rendering."""
