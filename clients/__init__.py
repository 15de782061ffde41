"""The Flower ClientApp of fedmarket (a retailer's client)."""
