"""The simulated Shopify store: its world, catalogue, order bodies, day-by-day simulator and ground truth."""
