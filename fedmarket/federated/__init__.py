"""What a federated run does, without Flower: a retailer's local round, the server's run log.

``clients/`` and ``server/`` translate Flower messages to and from these objects.
"""
