"""Deployment on separate machines: a retailer's local data preparation and the agreement.

``local_data`` turns ONE retailer's raw export into a prepared partition on that
retailer's machine; ``agreement`` holds what the consortium agrees on without exchanging
customers (the feature window's cut-off, normalisation statistics from summed moments,
the total number of training customers for delta).
"""
