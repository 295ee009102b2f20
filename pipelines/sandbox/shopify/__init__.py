"""The fake Shopify Admin GraphQL API: schema, query cost and throttle, node reads, bulk operations."""
